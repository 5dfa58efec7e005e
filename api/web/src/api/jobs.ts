// Following a job to its end: the API's server-sent events (`/jobs/{id}/events`), read
// with fetch because EventSource cannot send the Authorization header; if the stream
// cannot be had or breaks, polling `GET /jobs/{id}`.
import { createParser } from 'eventsource-parser';
import { api, apiUrl, authHeaders, unwrap, type Schemas } from './client';
import { ApiError, errorFromBody } from './errors';

export type Job = Schemas['JobOut'];

export function isFinished(job: Pick<Job, 'status'>): boolean {
  return job.status === 'succeeded' || job.status === 'failed';
}

export interface WatchOptions {
  signal: AbortSignal;
  onUpdate: (job: Job) => void;
  /** Which transport is in use, for the progress display. */
  onMode?: (mode: 'live' | 'polling') => void;
  pollIntervalMs?: number;
}

/** Calls `onUpdate` with each new state until the job has finished; resolves with the last. */
export async function watchJob(jobId: string, options: WatchOptions): Promise<Job> {
  try {
    options.onMode?.('live');
    const last = await streamJob(jobId, options);
    if (last && isFinished(last)) return last;
  } catch (e) {
    if (options.signal.aborted) throw e;
    // A 404 or 401 will not get better by polling.
    if (e instanceof ApiError && (e.status === 404 || e.status === 401 || e.status === 403)) throw e;
  }
  options.onMode?.('polling');
  return pollJob(jobId, options);
}

async function streamJob(jobId: string, { signal, onUpdate }: WatchOptions): Promise<Job | undefined> {
  const response = await fetch(apiUrl(`/jobs/${encodeURIComponent(jobId)}/events`), {
    headers: { ...authHeaders(), Accept: 'text/event-stream' },
    signal,
  });
  if (!response.ok) {
    throw errorFromBody(response.status, await response.json().catch(() => undefined));
  }
  if (!response.body) return undefined;
  let last: Job | undefined;
  const parser = createParser({
    onEvent(event) {
      try {
        last = JSON.parse(event.data) as Job;
      } catch {
        return;
      }
      onUpdate(last);
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(value);
    if (last && isFinished(last)) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  return last;
}

async function pollJob(jobId: string, { signal, onUpdate, pollIntervalMs = 1000 }: WatchOptions): Promise<Job> {
  for (;;) {
    if (signal.aborted) throw new DOMException('aborted', 'AbortError');
    const job = await unwrap(api.GET('/jobs/{id}', { params: { path: { id: jobId } }, signal }));
    onUpdate(job);
    if (isFinished(job)) return job;
    await sleep(pollIntervalMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });
}
