import { useId } from 'react';
import type { Schemas } from '../api/client';

export type ClassOut = Schemas['ClassOut'];

export function classLabel(c: ClassOut): string {
  return `${c.name} (${c.department})`;
}

export function ClassSelect({
  classes,
  value,
  onChange,
  label = 'Class',
  allowAll,
  required,
}: {
  classes: ClassOut[];
  value: string;
  onChange: (id: string) => void;
  label?: string;
  allowAll?: string;
  required?: boolean;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} required={required}>
        {allowAll !== undefined ? <option value="">{allowAll}</option> : <option value="">Choose a class…</option>}
        {classes.map((c) => (
          <option key={c.id} value={c.id}>
            {classLabel(c)}
          </option>
        ))}
      </select>
    </div>
  );
}
