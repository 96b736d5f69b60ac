// Writes only: ingest, vector upsert and node create in the plan's 3:2:1 ratio.
import { closedLoop, pick, requests } from './lib.js';
export { setup } from './lib.js';

export const options = closedLoop(16);

export default function (data) {
  requests[pick([['ingest', 3], ['upsert', 2], ['node', 1]])](data);
}
