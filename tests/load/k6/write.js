// Writes only: ingest, vector upsert and node create in the plan's 3:2:1 ratio.
import { pick, requests, summaryTrendStats, thresholds } from './lib.js';
export { setup } from './lib.js';

export const options = {
  vus: parseInt(__ENV.VUS || '16'),
  duration: __ENV.DURATION || '60s',
  thresholds: thresholds(),
  summaryTrendStats,
};

export default function (data) {
  requests[pick([['ingest', 3], ['upsert', 2], ['node', 1]])](data);
}
