// Five minutes (SOAK_DURATION) at a constant arrival rate (RATE requests/s, default 500) of the plan's
// mix, with writes paused for 20 s in every minute, so index builds and checkpoints
// start while searches go on. No request may take over a second.
import { MIX, pick, requests, summaryTrendStats, thresholds } from './lib.js';
export { setup } from './lib.js';

const t = thresholds();
t.http_req_duration = ['max<1000'];

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '500'),
      timeUnit: '1s',
      duration: __ENV.SOAK_DURATION || '5m',
      preAllocatedVUs: parseInt(__ENV.VUS || '64'),
      maxVUs: parseInt(__ENV.MAX_VUS || '256'),
    },
  },
  thresholds: t,
  summaryTrendStats,
};

const READS = [['search', 10], ['find', 5]];

export default function (data) {
  const second = Math.floor(Date.now() / 1000) % 60;
  requests[pick(second >= 40 ? READS : MIX)](data);
}
