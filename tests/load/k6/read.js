// Reads only: vector search and graph find in the plan's 10:5 ratio, closed loop.
import { pick, requests, summaryTrendStats, thresholds } from './lib.js';
export { setup } from './lib.js';

export const options = {
  vus: parseInt(__ENV.VUS || '64'),
  duration: __ENV.DURATION || '60s',
  thresholds: thresholds(),
  summaryTrendStats,
};

export default function (data) {
  requests[pick([['search', 10], ['find', 5]])](data);
}
