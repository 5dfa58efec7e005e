// The job watcher against a stubbed `fetch`: the live stream, and polling when the
// stream cannot be had.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const JOB = 'a1b2c3d4-0000-4000-8000-000000000001';
const job = (status: string, progress: number) => ({
  id: JOB,
  kind: 'attendance',
  lane: 'interactive',
  status,
  progress,
  attempts: 1,
  subject_id: JOB,
  created_at: '2026-11-20T04:00:00Z',
  updated_at: '2026-11-20T04:00:00Z',
});

function sseResponse(chunks: string[]): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      const enc = new TextEncoder();
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

describe('watchJob', () => {
  const fetchMock = vi.fn<(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>>();
  beforeEach(() => {
    vi.resetModules();
    fetchMock.mockReset();
    vi.stubGlobal('fetch', fetchMock);
    sessionStorage.setItem('attendance.apiKey', 'att_test');
  });
  afterEach(() => vi.unstubAllGlobals());

  it('follows the event stream, split anywhere, to the end with the key sent', async () => {
    const events = [job('queued', 0), job('running', 0.5), job('succeeded', 1)]
      .map((j) => `event: ${j.status}\ndata: ${JSON.stringify(j)}\n\n`)
      .join('');
    // Chunks that cut events (and a UTF-8 boundary-free split) in the middle.
    fetchMock.mockResolvedValueOnce(sseResponse([events.slice(0, 37), events.slice(37, 200), events.slice(200)]));
    const { watchJob } = await import('./jobs');
    const seen: string[] = [];
    const modes: string[] = [];
    const last = await watchJob(JOB, {
      signal: new AbortController().signal,
      onUpdate: (j) => seen.push(`${j.status}:${j.progress}`),
      onMode: (m) => modes.push(m),
    });
    expect(seen).toEqual(['queued:0', 'running:0.5', 'succeeded:1']);
    expect(last.status).toBe('succeeded');
    expect(modes).toEqual(['live']);
    const [url, init] = fetchMock.mock.calls[0];
    expect(String(url)).toMatch(new RegExp(`/jobs/${JOB}/events$`));
    expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer att_test');
  });

  it('polls when the stream fails, until the job has finished', async () => {
    fetchMock
      .mockResolvedValueOnce(json(503, { error: { code: 'unavailable', message: 'busy' } }))
      .mockResolvedValueOnce(json(200, job('running', 0.3)))
      .mockResolvedValueOnce(json(200, job('failed', 0.3)));
    const { watchJob } = await import('./jobs');
    const modes: string[] = [];
    const last = await watchJob(JOB, {
      signal: new AbortController().signal,
      onUpdate: () => undefined,
      onMode: (m) => modes.push(m),
      pollIntervalMs: 1,
    });
    expect(last.status).toBe('failed');
    expect(modes).toEqual(['live', 'polling']);
    expect(fetchMock).toHaveBeenCalledTimes(3);
  });

  it('polls when the stream ends before the job has', async () => {
    fetchMock
      .mockResolvedValueOnce(sseResponse([`data: ${JSON.stringify(job('running', 0.2))}\n\n`]))
      .mockResolvedValueOnce(json(200, job('succeeded', 1)));
    const { watchJob } = await import('./jobs');
    const last = await watchJob(JOB, { signal: new AbortController().signal, onUpdate: () => undefined, pollIntervalMs: 1 });
    expect(last.status).toBe('succeeded');
  });

  it('gives up at once on a job the key may not see', async () => {
    fetchMock.mockResolvedValueOnce(json(404, { error: { code: 'not_found', message: 'job not found' } }));
    const { watchJob } = await import('./jobs');
    await expect(watchJob(JOB, { signal: new AbortController().signal, onUpdate: () => undefined })).rejects.toThrow('job not found');
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });
});
