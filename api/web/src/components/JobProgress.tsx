// A job followed live (server-sent events, else polling) with a progress bar.
import { useEffect, useRef, useState } from 'react';
import { watchJob, type Job } from '../api/jobs';
import { ErrorMessage } from './states';
import { ProgressBar } from './ProgressBar';

const STATUS_TEXT: Record<Job['status'], string> = {
  queued: 'Waiting for a worker',
  running: 'Finding and matching faces',
  succeeded: 'Done',
  failed: 'Failed',
};

export function JobProgress({
  jobId,
  onFinished,
  runningText,
}: {
  jobId: string;
  onFinished: (job: Job) => void;
  runningText?: string;
}) {
  const [job, setJob] = useState<Job | null>(null);
  const [mode, setMode] = useState<'live' | 'polling'>('live');
  const [error, setError] = useState<unknown>(null);
  const finished = useRef(onFinished);
  finished.current = onFinished;

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    watchJob(jobId, { signal: controller.signal, onUpdate: setJob, onMode: setMode })
      .then((last) => finished.current(last))
      .catch((e) => {
        if (!controller.signal.aborted) setError(e);
      });
    return () => controller.abort();
  }, [jobId]);

  if (error) return <ErrorMessage error={error} />;
  const status = job?.status ?? 'queued';
  const text = status === 'running' && runningText ? runningText : STATUS_TEXT[status];
  return (
    <div className="job-progress" aria-live="polite">
      <ProgressBar value={status === 'succeeded' ? 1 : (job?.progress ?? 0)} label={text} />
      <p className="hint">
        {mode === 'live' ? 'Live updates' : 'Checking every second'}
        {job && job.attempts > 1 ? ` · attempt ${job.attempts}` : ''}
      </p>
      {job?.status === 'failed' && <p role="alert" className="state error">{job.error ?? 'The job failed'}</p>}
    </div>
  );
}
