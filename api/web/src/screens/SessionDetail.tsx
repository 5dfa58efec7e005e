// The result of a session: each photo with named boxes, the class list with
// present/absent toggles (each a correction), unknown faces to name, warnings, exports.
import { useCallback, useId, useMemo, useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { describeError } from '../api/errors';
import { isManager, useMe } from '../auth';
import { AuthImage } from '../components/AuthImage';
import { DownloadButton } from '../components/DownloadButton';
import { JobProgress } from '../components/JobProgress';
import { PhotoWithBoxes } from '../components/PhotoWithBoxes';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { formatDateTime } from '../format';
import { href } from '../router';
import { classList, labelFaces, unknownFaces, type RecordRow, type SessionDetail as Detail } from '../sessionView';
import { useAsync } from '../useAsync';

export function SessionDetail({ id }: { id: string }) {
  const state = useAsync(
    async (signal) => {
      const detail = await unwrap(api.GET('/attendance/session/{id}', { params: { path: { id } }, signal }));
      const cls = await unwrap(api.GET('/classes/{id}', { params: { path: { id: detail.class_id } }, signal }));
      return { detail, cls };
    },
    [id],
  );
  return (
    <section aria-labelledby="session-title">
      <AsyncView state={state} label="Loading the session…">
        {({ detail, cls }) => <SessionView detail={detail} cls={cls} reload={state.reload} />}
      </AsyncView>
    </section>
  );
}

function SessionView({ detail, cls, reload }: { detail: Detail; cls: Schemas['ClassOut']; reload: () => void }) {
  const labelled = useMemo(() => labelFaces(detail), [detail]);
  const lists = useMemo(() => classList(detail.records), [detail]);
  const pending = detail.status === 'pending';
  return (
    <>
      <header className="page-head">
        <h1 id="session-title">
          {cls.name} · {detail.subject || 'No subject'}
        </h1>
        <p className="hint">
          {formatDateTime(detail.taken_at)} · {cls.department}
          {detail.created_by ? ` · taken by ${detail.created_by.name}` : ''}
        </p>
      </header>

      {pending && detail.job_id && (
        <div className="card">
          <h2>Processing</h2>
          <JobProgress jobId={detail.job_id} onFinished={reload} />
        </div>
      )}
      {detail.status === 'failed' && (
        <p className="state error" role="alert">
          Processing this session failed. Take the attendance again, or correct the class list by hand.
        </p>
      )}

      {detail.warnings.length > 0 && (
        <div className="warnings" role="alert" aria-label="Warnings">
          <h2>Check before you trust this result</h2>
          <ul>
            {detail.warnings.map((w, i) => (
              <li key={i}>
                <strong>{warningTitle(w.code)}</strong>: {w.message}
                {w.earlier_session_id && (
                  <>
                    {' '}
                    (<a href={href(`/sessions/${w.earlier_session_id}`)}>the earlier session</a>)
                  </>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}

      {!pending && (
        <>
          <div className="summary" aria-label="Summary">
            <span className="stat present">
              <b>{lists.present.length}</b> present
            </span>
            <span className="stat absent">
              <b>{lists.absent.length}</b> absent
            </span>
            {lists.unmatched.length > 0 && (
              <span className="stat">
                <b>{lists.unmatched.length}</b> not decided
              </span>
            )}
            <span className="stat">
              <b>{unknownFaces(detail).length}</b> unknown faces
            </span>
            <span className="row gap">
              <DownloadButton path={`/export/sessions/${detail.id}?format=csv`} fileName="session.csv" label="Export CSV" />
              <DownloadButton path={`/export/sessions/${detail.id}?format=xlsx`} fileName="session.xlsx" label="Export XLSX" />
            </span>
          </div>

          <div className="result-grid">
            <div className="photos">
              <h2>Photos</h2>
              {(detail.photos ?? []).length === 0 && <Empty>No photos are kept for this session.</Empty>}
              {(detail.photos ?? []).map((p) => (
                <PhotoWithBoxes
                  key={p.id}
                  path={p.url}
                  number={p.number}
                  width={p.width ?? undefined}
                  height={p.height ?? undefined}
                  faces={labelled.get(p.id) ?? []}
                />
              ))}
            </div>
            <ClassListView detail={detail} onChanged={reload} />
          </div>
          <UnknownTray detail={detail} onChanged={reload} />
          <AuditLog detail={detail} />
        </>
      )}
    </>
  );
}

function warningTitle(code: Schemas['SessionWarningCode']): string {
  switch (code) {
    case 'duplicate_photo':
      return 'Photo used before';
    case 'taken_at_mismatch':
      return 'Time does not match the photo';
    case 'faces_over_cap':
      return 'Too many faces';
  }
}

function ClassListView({ detail, onChanged }: { detail: Detail; onChanged: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const toggle = useCallback(
    async (r: RecordRow) => {
      setBusy(r.student_id);
      setError(null);
      try {
        await unwrap(
          api.PATCH('/attendance/session/{id}/records/{student_id}', {
            params: { path: { id: detail.id, student_id: r.student_id } },
            body: { status: r.status === 'present' ? 'absent' : 'present', reason: 'corrected in the web app' },
          }),
        );
        onChanged();
      } catch (e) {
        setError(e);
      } finally {
        setBusy(null);
      }
    },
    [detail.id, onChanged],
  );
  return (
    <div className="class-list">
      <h2>Class list</h2>
      <ErrorMessage error={error} />
      {detail.records.length === 0 ? (
        <Empty>This class has no students with a record in this session.</Empty>
      ) : (
        <ul className="records" aria-label="Class list">
          {detail.records.map((r) => (
            <li key={r.student_id} className={`record ${r.status}`} data-testid="record" data-status={r.status}>
              <label className="toggle">
                <input
                  type="checkbox"
                  role="switch"
                  checked={r.status === 'present'}
                  disabled={busy !== null}
                  onChange={() => toggle(r)}
                  aria-label={`${r.name} present`}
                />
                <span className="record-name">
                  {r.name} <small>{r.roll_no}</small>
                </span>
              </label>
              <span className="record-status">
                {r.status === 'unmatched' ? 'not decided' : r.status}
                {r.source === 'manual' && <small className="badge">corrected</small>}
              </span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function UnknownTray({ detail, onChanged }: { detail: Detail; onChanged: () => void }) {
  const faces = unknownFaces(detail);
  return (
    <div className="card">
      <h2>Unknown faces</h2>
      {faces.length === 0 ? (
        <Empty>Every face found was recognised.</Empty>
      ) : (
        <ul className="tray">
          {faces.map((f) => (
            <UnknownFace key={f.face_id} face={f} detail={detail} onChanged={onChanged} />
          ))}
        </ul>
      )}
    </div>
  );
}

function UnknownFace({ face, detail, onChanged }: { face: Schemas['FaceOut']; detail: Detail; onChanged: () => void }) {
  const me = useMe();
  const id = useId();
  const [student, setStudent] = useState('');
  const [enroll, setEnroll] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const photoNumber = (detail.photos ?? []).find((p) => p.id === face.photo_id)?.number;
  return (
    <li className="tray-face">
      {face.crop_url ? (
        <AuthImage path={face.crop_url} alt={`Unknown face ${face.face_index + 1}`} className="crop" />
      ) : (
        <span className="crop img-missing">no crop</span>
      )}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!student) return;
          setBusy(true);
          setError(null);
          try {
            await unwrap(
              api.POST('/attendance/session/{id}/faces/{face_id}/assign', {
                params: { path: { id: detail.id, face_id: face.face_id }, query: { enroll } },
                body: { student_id: student, reason: 'named in the web app' },
              }),
            );
            onChanged();
          } catch (err) {
            setError(describeError(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label htmlFor={`${id}-s`}>
          Who is this?{photoNumber ? ` (photo ${photoNumber})` : ''}
        </label>
        <select id={`${id}-s`} value={student} onChange={(e) => setStudent(e.target.value)}>
          <option value="">Choose a student…</option>
          {detail.records.map((r) => (
            <option key={r.student_id} value={r.student_id}>
              {r.name} ({r.roll_no})
            </option>
          ))}
        </select>
        {isManager(me.role) && (
          <label className="check">
            <input type="checkbox" checked={enroll} onChange={(e) => setEnroll(e.target.checked)} /> Add to this
            student's photos
          </label>
        )}
        <button type="submit" disabled={!student || busy}>
          Assign
        </button>
        {error && (
          <p role="alert" className="inline-error">
            {error}
          </p>
        )}
      </form>
    </li>
  );
}

function AuditLog({ detail }: { detail: Detail }) {
  if (detail.audit.length === 0) return null;
  const names = new Map(detail.records.map((r) => [r.student_id, r.name]));
  return (
    <details className="card">
      <summary>Corrections ({detail.audit.length})</summary>
      <ul>
        {detail.audit.map((a) => (
          <li key={a.id}>
            {formatDateTime(a.created_at)}:{' '}
            {a.action === 'record_corrected'
              ? `${names.get(a.student_id ?? '') ?? 'a student'} set ${a.to_status ?? ''}`
              : `a face named as ${names.get(a.student_id ?? '') ?? 'a student'}${a.enrolled ? ' (added to their photos)' : ''}`}
            {a.reason ? ` — ${a.reason}` : ''}
          </li>
        ))}
      </ul>
    </details>
  );
}
