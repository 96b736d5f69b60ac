// Reads only: vector search and graph find in the plan's 10:5 ratio, closed loop.
import { closedLoop, pick, requests } from './lib.js';
export { setup } from './lib.js';

export const options = closedLoop(64);

export default function (data) {
  requests[pick([['search', 10], ['find', 5]])](data);
}
