// Bulk registration: a ZIP (one folder of photos per roll number, optional
// students.csv) uploaded with progress, then the per-student outcome table until the
// batch has finished, and its CSV report.
import { useEffect, useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { newIdempotencyKey, uploadForm } from '../api/upload';
import { ClassSelect } from '../components/ClassSelect';
import { DownloadButton } from '../components/DownloadButton';
import { ProgressBar } from '../components/ProgressBar';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { formatBytes } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

export function Batch({ id }: { id?: string }) {
  return (
    <section aria-labelledby="batch-title">
      <header className="page-head">
        <h1 id="batch-title">Batch registration</h1>
        <p className="hint">
          A ZIP with one folder per roll number holding that student's photos, and optionally a <code>students.csv</code>{' '}
          (<code>roll_no,name,class</code>) at its root.
        </p>
      </header>
      {id ? <BatchStatus id={id} /> : <BatchUpload />}
    </section>
  );
}

function BatchUpload() {
  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  const [classId, setClassId] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [idempotencyKey] = useState(newIdempotencyKey);
  return (
    <form
      className="card form"
      onSubmit={async (e) => {
        e.preventDefault();
        if (!file) return setError(new Error('Choose the ZIP file.'));
        setError(null);
        const form = new FormData();
        if (classId) form.append('class_id', classId);
        form.append('file', file, file.name);
        setProgress(0);
        try {
          const accepted = await uploadForm<Schemas['BatchAccepted']>('/students/batches', form, {
            idempotencyKey,
            onProgress: ({ loaded, total }) => setProgress(total ? loaded / total : 0),
          });
          navigate(`/students/batches/${accepted.batch_id}`);
        } catch (err) {
          setError(err);
          setProgress(null);
        }
      }}
    >
      <ClassSelect classes={classes.data ?? []} value={classId} onChange={setClassId} label="Default class" />
      <div className="field">
        <label htmlFor="batch-file">ZIP file</label>
        <input
          id="batch-file"
          type="file"
          accept=".zip,application/zip"
          onChange={(e) => setFile(e.target.files?.[0] ?? null)}
          disabled={progress !== null}
        />
        {file && <small className="hint">{formatBytes(file.size)}</small>}
      </div>
      <ErrorMessage error={error} />
      {progress !== null && <ProgressBar value={progress} label="Uploading the ZIP" />}
      <div className="row end">
        <button type="submit" className="primary" disabled={progress !== null}>
          Upload
        </button>
      </div>
    </form>
  );
}

function BatchStatus({ id }: { id: string }) {
  const state = useAsync((signal) => unwrap(api.GET('/students/batches/{id}', { params: { path: { id } }, signal })), [id]);
  const batch = state.data;
  const running = batch && (batch.status === 'queued' || batch.status === 'processing');
  // The batch has no event stream: its counts are read again every two seconds.
  useEffect(() => {
    if (!running) return;
    const t = setTimeout(state.reload, 2000);
    return () => clearTimeout(t);
  }, [running, batch, state.reload]);

  return (
    <AsyncView state={state} label="Loading the batch…">
      {(b) => {
        const c = b.counts;
        const students = c.queued + c.active + c.failed;
        const done = c.active + c.failed;
        return (
          <>
            <div className="card">
              <p>
                Status: <span className={`badge ${b.status}`}>{b.status}</span> · {formatBytes(b.size_bytes)}
              </p>
              {b.error && (
                <p role="alert" className="state error">
                  {b.error}
                </p>
              )}
              <ProgressBar
                value={b.status === 'completed' ? 1 : students ? done / students : 0}
                label={`${done} of ${students} students registered or failed`}
              />
              <p className="summary">
                <span className="stat">
                  <b>{c.active}</b> active
                </span>
                <span className="stat">
                  <b>{c.failed}</b> failed
                </span>
                <span className="stat">
                  <b>{c.rejected}</b> refused
                </span>
                <span className="stat">
                  <b>{c.duplicates}</b> duplicates
                </span>
                <span className="stat">
                  <b>{c.updated}</b> updated
                </span>
              </p>
              <div className="row gap">
                <DownloadButton path={`/students/batches/${b.id}/report.csv`} fileName="batch-report.csv" label="Download report (CSV)" />
                <a className="button-like" href={href('/students/batches')}>
                  Upload another
                </a>
              </div>
            </div>
            {b.items.length === 0 ? (
              <Empty>No students yet.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Roll no.</th>
                      <th scope="col">Name</th>
                      <th scope="col">Outcome</th>
                      <th scope="col">Reason</th>
                    </tr>
                  </thead>
                  <tbody>
                    {b.items.map((it, i) => (
                      <tr key={`${it.roll_no ?? ''}-${it.entry ?? ''}-${i}`}>
                        <td>{it.student_id ? <a href={href(`/students/${it.student_id}`)}>{it.roll_no}</a> : (it.roll_no ?? '—')}</td>
                        <td>{it.name ?? '—'}</td>
                        <td>
                          <span className={`badge ${it.status}`}>{it.status}</span>
                          {it.updated && ' (updated)'}
                        </td>
                        <td>
                          {it.reason}
                          {it.entry && (
                            <>
                              {it.reason ? ' ' : ''}
                              <code>{it.entry}</code>
                            </>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        );
      }}
    </AsyncView>
  );
}
