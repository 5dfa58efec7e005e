// One student: edit, delete (with confirmation), photos with their verdicts, more photos.
import { useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { describeError } from '../api/errors';
import { uploadForm } from '../api/upload';
import { isManager, useMe } from '../auth';
import { ClassSelect } from '../components/ClassSelect';
import { ConfirmButton } from '../components/ConfirmButton';
import { Field } from '../components/Field';
import { JobProgress } from '../components/JobProgress';
import { PhotoPicker } from '../components/PhotoPicker';
import { ProgressBar } from '../components/ProgressBar';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { formatDateTime, formatPercent } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';
import { verdictText } from '../verdicts';
import { STATUSES } from './Students';

export function StudentDetail({ id }: { id: string }) {
  const state = useAsync(
    async (signal) => {
      const [student, classes] = await Promise.all([
        unwrap(api.GET('/students/{id}', { params: { path: { id } }, signal })),
        unwrap(api.GET('/classes', { signal })),
      ]);
      return { student, classes };
    },
    [id],
  );
  return (
    <section aria-labelledby="student-title">
      <AsyncView state={state} label="Loading the student…">
        {({ student, classes }) => <StudentView student={student} classes={classes} reload={state.reload} />}
      </AsyncView>
    </section>
  );
}

function StudentView({
  student,
  classes,
  reload,
}: {
  student: Schemas['StudentDetailOut'];
  classes: Schemas['ClassOut'][];
  reload: () => void;
}) {
  const me = useMe();
  const [deleteError, setDeleteError] = useState<unknown>(null);
  return (
    <>
      <header className="page-head row between">
        <div>
          <h1 id="student-title">{student.name}</h1>
          <p className="hint">
            {student.roll_no} · <span className={`badge ${student.status}`}>{student.status}</span>
            {student.needs_photos && <span className="badge failed">needs new photos</span>}
          </p>
        </div>
        {isManager(me.role) && (
          <ConfirmButton
            label="Delete student"
            question={`Delete ${student.name} (${student.roll_no}) with their photos and face data? This cannot be undone.`}
            confirmLabel="Delete"
            onConfirm={async () => {
              try {
                // Any 2xx is success (204, or 200 with what was removed).
                await unwrap(api.DELETE('/students/{id}', { params: { path: { id: student.id } } }));
                navigate('/students');
              } catch (e) {
                setDeleteError(e);
              }
            }}
          />
        )}
      </header>
      <ErrorMessage error={deleteError} />
      {student.registration_job && student.registration_job.status !== 'succeeded' && student.registration_job.status !== 'failed' && (
        <div className="card">
          <h2>Checking photos</h2>
          <JobProgress jobId={student.registration_job.job_id} runningText="Checking the photos" onFinished={reload} />
        </div>
      )}
      <div className="two-col">
        <EditStudent student={student} classes={classes} onSaved={reload} />
        <Photos student={student} onChanged={reload} />
      </div>
      <StudentFigures id={student.id} />
    </>
  );
}

function EditStudent({
  student,
  classes,
  onSaved,
}: {
  student: Schemas['StudentDetailOut'];
  classes: Schemas['ClassOut'][];
  onSaved: () => void;
}) {
  const [name, setName] = useState(student.name);
  const [rollNo, setRollNo] = useState(student.roll_no);
  const [classId, setClassId] = useState(student.class_id);
  const [status, setStatus] = useState(student.status);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="card form"
      aria-label="Edit student"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        setSaved(false);
        try {
          await unwrap(
            api.PUT('/students/{id}', {
              params: { path: { id: student.id } },
              body: { name: name.trim(), roll_no: rollNo.trim(), class_id: classId, status },
            }),
          );
          setSaved(true);
          onSaved();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>Details</h2>
      <Field label="Name" value={name} onChange={(e) => setName(e.target.value)} required />
      <Field label="Roll number" value={rollNo} onChange={(e) => setRollNo(e.target.value)} required />
      <ClassSelect classes={classes} value={classId} onChange={setClassId} required />
      <div className="field">
        <label htmlFor="student-status">Status</label>
        <select id="student-status" value={status} onChange={(e) => setStatus(e.target.value as typeof status)}>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <ErrorMessage error={error} />
      {saved && <p role="status">Saved.</p>}
      <div className="row end">
        <button type="submit" className="primary" disabled={busy}>
          Save
        </button>
      </div>
    </form>
  );
}

function Photos({ student, onChanged }: { student: Schemas['StudentDetailOut']; onChanged: () => void }) {
  const me = useMe();
  const [files, setFiles] = useState<File[]>([]);
  const [progress, setProgress] = useState<number | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  return (
    <div className="card">
      <h2>Photos</h2>
      {student.photos.length === 0 ? (
        <Empty>No photos.</Empty>
      ) : (
        <ul className="verdicts" aria-label="Photo verdicts">
          {student.photos.map((p, i) => (
            <li key={p.id} className={`verdict ${p.verdict}`}>
              <span>
                Photo {i + 1} ({formatDateTime(p.created_at)}): {verdictText(p)}
                {p.same_as && ` — looks like ${p.same_as.name} (${p.same_as.roll_no})`}
              </span>
              {isManager(me.role) && (
                <ConfirmButton
                  className="link danger"
                  label="Remove"
                  question={`Remove photo ${i + 1} and its face data?`}
                  confirmLabel="Remove"
                  onConfirm={async () => {
                    try {
                      await unwrap(
                        api.DELETE('/students/{id}/photos/{photo_id}', {
                          params: { path: { id: student.id, photo_id: p.id } },
                        }),
                      );
                      onChanged();
                    } catch (e) {
                      setError(describeError(e));
                    }
                  }}
                />
              )}
            </li>
          ))}
        </ul>
      )}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (files.length === 0) return;
          setError(null);
          const form = new FormData();
          for (const f of files) form.append('photos', f, f.name);
          setProgress(0);
          try {
            const accepted = await uploadForm<Schemas['PhotosAccepted']>(`/students/${student.id}/photos`, form, {
              onProgress: ({ loaded, total }) => setProgress(total ? loaded / total : 0),
            });
            setFiles([]);
            setJobId(accepted.job_id);
          } catch (err) {
            setError(describeError(err));
          } finally {
            setProgress(null);
          }
        }}
      >
        <PhotoPicker files={files} onChange={setFiles} max={10} label="Add photos" disabled={progress !== null} />
        {progress !== null && <ProgressBar value={progress} label="Uploading photos" />}
        {jobId && (
          <JobProgress
            jobId={jobId}
            runningText="Checking the photos"
            onFinished={() => {
              setJobId(null);
              onChanged();
            }}
          />
        )}
        {error && (
          <p role="alert" className="state error">
            {error}
          </p>
        )}
        <button type="submit" disabled={files.length === 0 || progress !== null}>
          Upload photos
        </button>
      </form>
    </div>
  );
}

function StudentFigures({ id }: { id: string }) {
  const state = useAsync((signal) => unwrap(api.GET('/analytics/students/{id}', { params: { path: { id } }, signal })), [id]);
  return (
    <div className="card">
      <h2>Attendance</h2>
      <AsyncView state={state}>
        {(a) =>
          a.history.length === 0 ? (
            <Empty>No sessions yet.</Empty>
          ) : (
            <>
              <p>
                {a.attended} of {a.total} sessions · <b>{formatPercent(a.percentage)}</b>
              </p>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Date</th>
                      <th scope="col">Subject</th>
                      <th scope="col">Status</th>
                    </tr>
                  </thead>
                  <tbody>
                    {a.history
                      .slice()
                      .reverse()
                      .map((h) => (
                        <tr key={h.session_id}>
                          <td>
                            <a href={href(`/sessions/${h.session_id}`)}>{h.date}</a>
                          </td>
                          <td>{h.subject || '—'}</td>
                          <td>
                            {h.status}
                            {h.source === 'manual' ? ' (corrected)' : ''}
                          </td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </div>
            </>
          )
        }
      </AsyncView>
    </div>
  );
}
