// The plan's mix (search 10, find 5, ingest 3, upsert 2, node create 1), closed loop,
// no think time: VUS virtual users (default 64) for DURATION (default 60s).
import { MIX, closedLoop, pick, requests } from './lib.js';
export { setup } from './lib.js';

export const options = closedLoop(64);

export default function (data) {
  requests[pick(MIX)](data);
}
