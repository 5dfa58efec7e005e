// Classes: the list, a new class (admins and department admins), and one class with
// links to its students, sessions and figures.
import { useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { isManager, useMe } from '../auth';
import { ConfirmButton } from '../components/ConfirmButton';
import { Field } from '../components/Field';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { formatDateTime } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

export function Classes() {
  const me = useMe();
  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  return (
    <section aria-labelledby="classes-title">
      <header className="page-head">
        <h1 id="classes-title">Classes</h1>
      </header>
      {isManager(me.role) && <NewClass onCreated={classes.reload} />}
      <AsyncView state={classes} label="Loading classes…">
        {(list) =>
          list.length === 0 ? (
            <Empty>No classes yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Department</th>
                    <th scope="col">Year</th>
                    <th scope="col">Section</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((c) => (
                    <tr key={c.id}>
                      <td>
                        <a href={href(`/classes/${c.id}`)}>{c.name}</a>
                      </td>
                      <td>{c.department}</td>
                      <td>{c.year ?? '—'}</td>
                      <td>{c.section ?? '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </AsyncView>
    </section>
  );
}

function NewClass({ onCreated }: { onCreated: () => void }) {
  const me = useMe();
  const [name, setName] = useState('');
  const [department, setDepartment] = useState(me.department ?? '');
  const [year, setYear] = useState('');
  const [section, setSection] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="card form inline-form"
      aria-label="New class"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          await unwrap(
            api.POST('/classes', {
              body: {
                name: name.trim(),
                department: department.trim(),
                year: year ? Number(year) : undefined,
                section: section.trim() || undefined,
              },
            }),
          );
          setName('');
          setYear('');
          setSection('');
          onCreated();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>New class</h2>
      <Field label="Class name" value={name} onChange={(e) => setName(e.target.value)} required placeholder="CSE 3A" />
      <Field
        label="Department"
        value={department}
        onChange={(e) => setDepartment(e.target.value)}
        required
        readOnly={me.role !== 'admin'}
        placeholder="CSE"
      />
      <Field label="Year" type="number" min={1} max={10} value={year} onChange={(e) => setYear(e.target.value)} />
      <Field label="Section" value={section} onChange={(e) => setSection(e.target.value)} />
      <ErrorMessage error={error} />
      <div className="row end">
        <button type="submit" className="primary" disabled={busy}>
          Create class
        </button>
      </div>
    </form>
  );
}

export function ClassDetail({ id }: { id: string }) {
  const me = useMe();
  const state = useAsync((signal) => unwrap(api.GET('/classes/{id}', { params: { path: { id } }, signal })), [id]);
  const [error, setError] = useState<unknown>(null);
  return (
    <section aria-labelledby="class-title">
      <AsyncView state={state} label="Loading the class…">
        {(c: Schemas['ClassOut']) => (
          <>
            <header className="page-head row between">
              <div>
                <h1 id="class-title">{c.name}</h1>
                <p className="hint">
                  {c.department}
                  {c.year ? ` · year ${c.year}` : ''}
                  {c.section ? ` · section ${c.section}` : ''} · created {formatDateTime(c.created_at)}
                </p>
              </div>
              {isManager(me.role) && (
                <ConfirmButton
                  label="Delete class"
                  question={`Delete ${c.name}? Only a class without students or sessions can be deleted.`}
                  confirmLabel="Delete"
                  onConfirm={async () => {
                    try {
                      await unwrap(api.DELETE('/classes/{id}', { params: { path: { id: c.id } } }));
                      navigate('/classes');
                    } catch (e) {
                      setError(e);
                    }
                  }}
                />
              )}
            </header>
            <ErrorMessage error={error} />
            <nav className="card links" aria-label="This class">
              <a href={href('/students', { class: c.id })}>Students</a>
              <a href={href('/students/new', { class: c.id })}>Register a student</a>
              <a href={href('/sessions', { class: c.id })}>Sessions</a>
              <a href={href('/analytics', { class: c.id })}>Analytics</a>
            </nav>
          </>
        )}
      </AsyncView>
    </section>
  );
}
