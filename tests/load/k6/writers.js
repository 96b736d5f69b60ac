// Concurrent writers of one kind, for the "16 concurrent writers" figures:
// KIND (upsert, node or ingest; default upsert), 16 virtual users, closed loop.
import { closedLoop, requests } from './lib.js';
export { setup } from './lib.js';

export const options = closedLoop(16);

const KIND = __ENV.KIND || 'upsert';
if (!['upsert', 'node', 'ingest'].includes(KIND)) throw new Error(`KIND must be upsert, node or ingest, not ${KIND}`);

export default function (data) {
  requests[KIND](data);
}
