// Register a student with several photos; once the job has judged them, each photo
// shows its verdict (accepted, or rejected with the reason).
import { useEffect, useMemo, useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { newIdempotencyKey, uploadForm } from '../api/upload';
import { ClassSelect } from '../components/ClassSelect';
import { Field } from '../components/Field';
import { JobProgress } from '../components/JobProgress';
import { PhotoPicker } from '../components/PhotoPicker';
import { ProgressBar } from '../components/ProgressBar';
import { AsyncView, ErrorMessage } from '../components/states';
import { href } from '../router';
import { useAsync } from '../useAsync';
import { verdictText } from '../verdicts';

const MAX_PHOTOS = 10;

export function RegisterStudent() {
  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  // "Register another" starts a fresh form in the same class.
  const [round, setRound] = useState(0);
  const [lastClass, setLastClass] = useState<string | null>(null);
  return (
    <section aria-labelledby="register-title">
      <header className="page-head">
        <h1 id="register-title">Register a student</h1>
        <p className="hint">Several clear photos of the student's face alone, from the front and slightly to each side.</p>
      </header>
      <AsyncView state={classes}>
        {(list) => (
          <RegisterForm
            key={round}
            classes={list}
            initialClass={lastClass}
            onAnother={(classId) => {
              setLastClass(classId);
              setRound((r) => r + 1);
            }}
          />
        )}
      </AsyncView>
    </section>
  );
}

type Stage =
  | { step: 'form' }
  | { step: 'uploading'; progress: number }
  | { step: 'checking'; accepted: Schemas['RegisterAccepted'] }
  | { step: 'done'; student: Schemas['StudentDetailOut'] };

function RegisterForm({
  classes,
  initialClass,
  onAnother,
}: {
  classes: Schemas['ClassOut'][];
  initialClass: string | null;
  onAnother: (classId: string) => void;
}) {
  const preset = initialClass ?? new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('class') ?? '';
  const [classId, setClassId] = useState(preset || (classes.length === 1 ? classes[0].id : ''));
  const [rollNo, setRollNo] = useState('');
  const [name, setName] = useState('');
  const [photos, setPhotos] = useState<File[]>([]);
  const [consent, setConsent] = useState(false);
  const [consentNote, setConsentNote] = useState('');
  const [stage, setStage] = useState<Stage>({ step: 'form' });
  const [error, setError] = useState<unknown>(null);
  const [idempotencyKey] = useState(newIdempotencyKey);
  const previews = useMemo(() => photos.map((f) => URL.createObjectURL(f)), [photos]);
  useEffect(() => () => previews.forEach((u) => URL.revokeObjectURL(u)), [previews]);

  const submit = async () => {
    setError(null);
    if (photos.length === 0) return setError(new Error('Add at least one photo of the student.'));
    const form = new FormData();
    form.append('roll_no', rollNo.trim());
    form.append('name', name.trim());
    form.append('class_id', classId);
    // The student's consent to the use of their face, as recorded by the college; the API
    // stores it with this key and refuses registrations without it when REQUIRE_CONSENT is on.
    if (consent) {
      form.append('consent', 'true');
      if (consentNote.trim()) form.append('consent_note', consentNote.trim());
    }
    for (const p of photos) form.append('photos', p, p.name);
    setStage({ step: 'uploading', progress: 0 });
    try {
      const accepted = await uploadForm<Schemas['RegisterAccepted']>('/students/register', form, {
        idempotencyKey,
        onProgress: ({ loaded, total }) => setStage({ step: 'uploading', progress: total ? loaded / total : 0 }),
      });
      setStage({ step: 'checking', accepted });
    } catch (e) {
      setError(e);
      setStage({ step: 'form' });
    }
  };

  if (stage.step === 'checking' || stage.step === 'done') {
    const studentId = stage.step === 'checking' ? stage.accepted.student_id : stage.student.id;
    return (
      <div className="card">
        <h2>
          {name} ({rollNo})
        </h2>
        {stage.step === 'checking' ? (
          <JobProgress
            jobId={stage.accepted.job_id}
            runningText="Checking the photos"
            onFinished={async () => {
              try {
                const student = await unwrap(api.GET('/students/{id}', { params: { path: { id: studentId } } }));
                setStage({ step: 'done', student });
              } catch (e) {
                setError(e);
              }
            }}
          />
        ) : (
          <>
            <p role="status">
              Registration {stage.student.status === 'active' ? 'complete: the student can be recognised.' : `ended with status ${stage.student.status}.`}
            </p>
            <ul className="verdicts" aria-label="Photo verdicts">
              {stage.student.photos.map((p, i) => (
                <li key={p.id} className={`verdict ${p.verdict}`} data-testid="verdict">
                  {previews[i] && <img src={previews[i]} alt={`Photo ${i + 1}`} />}
                  <span>
                    Photo {i + 1}: {verdictText(p)}
                  </span>
                </li>
              ))}
            </ul>
          </>
        )}
        <ErrorMessage error={error} />
        <div className="row gap">
          <a className="button-like" href={href(`/students/${studentId}`)}>
            Open the student
          </a>
          <button type="button" onClick={() => onAnother(classId)}>
            Register another
          </button>
        </div>
      </div>
    );
  }

  const uploading = stage.step === 'uploading';
  return (
    <form
      className="card form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <ClassSelect classes={classes} value={classId} onChange={setClassId} required />
      <Field label="Roll number" value={rollNo} onChange={(e) => setRollNo(e.target.value)} required maxLength={64} />
      <Field label="Name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
      <PhotoPicker files={photos} onChange={setPhotos} max={MAX_PHOTOS} label="Photos of the student" disabled={uploading} />
      <label className="check">
        <input type="checkbox" checked={consent} onChange={(e) => setConsent(e.target.checked)} /> The student has
        consented to the use of their face for attendance
      </label>
      {consent && (
        <Field
          label="Consent note (optional)"
          value={consentNote}
          onChange={(e) => setConsentNote(e.target.value)}
          maxLength={500}
        />
      )}
      <ErrorMessage error={error} />
      {uploading && <ProgressBar value={stage.progress} label="Uploading photos" />}
      <div className="row end">
        <button type="submit" className="primary" disabled={uploading}>
          Register
        </button>
      </div>
    </form>
  );
}
