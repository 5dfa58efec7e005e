// The home screen: pick a class and subject, add 1–5 classroom photos, upload with a
// progress bar; then the session's page follows the job live and shows the result.
import { useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { newIdempotencyKey, uploadForm } from '../api/upload';
import { ClassSelect } from '../components/ClassSelect';
import { Field } from '../components/Field';
import { PhotoPicker } from '../components/PhotoPicker';
import { ProgressBar } from '../components/ProgressBar';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { localInputToRfc3339 } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

const MAX_PHOTOS = 5;

export function Attendance() {
  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  return (
    <section aria-labelledby="attendance-title">
      <header className="page-head">
        <h1 id="attendance-title">Take attendance</h1>
        <p className="hint">Photograph the class (1–5 photos so that every face is seen), then upload.</p>
      </header>
      <AsyncView state={classes} label="Loading your classes…">
        {(list) =>
          list.length === 0 ? (
            <Empty>
              There are no classes yet. <a href={href('/classes')}>Create a class</a> or ask your department admin.
            </Empty>
          ) : (
            <MarkForm classes={list} />
          )
        }
      </AsyncView>
    </section>
  );
}

function MarkForm({ classes }: { classes: Schemas['ClassOut'][] }) {
  const [classId, setClassId] = useState(() => (classes.length === 1 ? classes[0].id : ''));
  const [subject, setSubject] = useState('');
  const [takenAt, setTakenAt] = useState('');
  const [photos, setPhotos] = useState<File[]>([]);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  // One key per set of photos: a retry of the same upload cannot make a second session.
  const [idempotencyKey, setIdempotencyKey] = useState(newIdempotencyKey);

  const uploading = progress !== null;
  const submit = async () => {
    setError(null);
    if (!classId) return setError(new Error('Choose the class first.'));
    if (photos.length === 0) return setError(new Error('Add at least one photo of the class.'));
    const form = new FormData();
    form.append('class_id', classId);
    if (subject.trim()) form.append('subject', subject.trim());
    const taken = localInputToRfc3339(takenAt);
    if (taken) form.append('taken_at', taken);
    for (const p of photos) form.append('photos', p, p.name);
    setProgress(0);
    try {
      const accepted = await uploadForm<Schemas['MarkAccepted']>('/attendance/mark', form, {
        idempotencyKey,
        onProgress: ({ loaded, total }) => setProgress(total ? loaded / total : 0),
      });
      setIdempotencyKey(newIdempotencyKey());
      navigate(`/sessions/${accepted.session_id}`);
    } catch (e) {
      setError(e);
      setProgress(null);
    }
  };

  return (
    <form
      className="card form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <ClassSelect classes={classes} value={classId} onChange={setClassId} required />
      <Field label="Subject" value={subject} onChange={(e) => setSubject(e.target.value)} placeholder="e.g. DBMS" maxLength={200} />
      <Field
        label="Taken at (optional)"
        type="datetime-local"
        value={takenAt}
        onChange={(e) => setTakenAt(e.target.value)}
        hint="Leave empty to use the time the photo was taken."
      />
      <PhotoPicker
        files={photos}
        onChange={(f) => {
          setPhotos(f);
          setIdempotencyKey(newIdempotencyKey());
        }}
        max={MAX_PHOTOS}
        label="Classroom photos"
        disabled={uploading}
      />
      <ErrorMessage error={error} />
      {uploading && <ProgressBar value={progress} label="Uploading photos" />}
      <div className="row end">
        <button type="submit" className="primary" disabled={uploading}>
          {uploading ? 'Uploading…' : 'Mark attendance'}
        </button>
      </div>
    </form>
  );
}
