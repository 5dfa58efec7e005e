// Photos by drag and drop, by file picker, or straight from a phone's camera.
import { useEffect, useId, useMemo, useState, type DragEvent } from 'react';
import { ACCEPTED_TYPES, addPhotos } from '../photoSelection';
import { formatBytes } from '../format';

export function PhotoPicker({
  files,
  onChange,
  max,
  label,
  disabled,
}: {
  files: File[];
  onChange: (files: File[]) => void;
  max: number;
  label: string;
  disabled?: boolean;
}) {
  const id = useId();
  const [problems, setProblems] = useState<string[]>([]);
  const [over, setOver] = useState(false);
  const previews = useMemo(() => files.map((f) => URL.createObjectURL(f)), [files]);
  useEffect(() => () => previews.forEach((u) => URL.revokeObjectURL(u)), [previews]);

  const add = (incoming: Iterable<File>) => {
    const s = addPhotos(files, incoming, max);
    setProblems(s.problems);
    onChange(s.files);
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (!disabled) add(Array.from(e.dataTransfer.files));
  };

  return (
    <fieldset className="photo-picker" disabled={disabled}>
      <legend>{label}</legend>
      <div
        className={`drop-zone${over ? ' over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        <p>
          Drop photos here, or{' '}
          <label htmlFor={`${id}-pick`} className="button-like">
            choose photos
          </label>{' '}
          <label htmlFor={`${id}-camera`} className="button-like">
            take a photo
          </label>
        </p>
        <p className="hint">
          {files.length} of at most {max} · JPEG, PNG or WebP, up to 10 MB each
        </p>
        <input
          id={`${id}-pick`}
          className="visually-hidden"
          type="file"
          accept={ACCEPTED_TYPES.join(',')}
          multiple
          onChange={(e) => {
            add(Array.from(e.target.files ?? []));
            e.target.value = '';
          }}
        />
        <input
          id={`${id}-camera`}
          className="visually-hidden"
          type="file"
          accept="image/*"
          capture="environment"
          onChange={(e) => {
            add(Array.from(e.target.files ?? []));
            e.target.value = '';
          }}
        />
      </div>
      {problems.length > 0 && (
        <ul className="problems" role="alert">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      {files.length > 0 && (
        <ul className="thumbs">
          {files.map((f, i) => (
            <li key={`${f.name}-${f.size}-${f.lastModified}`}>
              <img src={previews[i]} alt={`Photo ${i + 1}: ${f.name}`} />
              <span className="thumb-name">
                {f.name} <small>({formatBytes(f.size)})</small>
              </span>
              <button
                type="button"
                className="link"
                aria-label={`Remove ${f.name}`}
                onClick={() => onChange(files.filter((_, j) => j !== i))}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
    </fieldset>
  );
}
