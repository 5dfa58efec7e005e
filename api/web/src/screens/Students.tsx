// Students: search, class filter and status, with links to register one or a batch.
import { useEffect, useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { ClassSelect } from '../components/ClassSelect';
import { Field } from '../components/Field';
import { AsyncView, Empty } from '../components/states';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

const PER_PAGE = 50;
export const STATUSES: Schemas['StudentStatusOut'][] = ['pending', 'active', 'failed', 'inactive', 'withdrawn', 'deleted'];

export function Students({ query }: { query: URLSearchParams }) {
  const classId = query.get('class') ?? '';
  const q = query.get('q') ?? '';
  const status = query.get('status') ?? '';
  const needsPhotos = query.get('needs_photos') === 'true';
  const page = Math.max(1, Number(query.get('page') ?? '1') || 1);
  const set = (changes: Record<string, string>) =>
    navigate('/students', {
      class: classId,
      q,
      status,
      needs_photos: needsPhotos ? 'true' : '',
      page: '',
      ...changes,
    });

  // The search box updates the address after a pause, not on every key.
  const [search, setSearch] = useState(q);
  useEffect(() => setSearch(q), [q]);
  useEffect(() => {
    if (search === q) return;
    const t = setTimeout(() => set({ q: search }), 300);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [search]);

  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  const students = useAsync(
    (signal) =>
      unwrap(
        api.GET('/students', {
          params: {
            query: {
              class_id: classId || undefined,
              q: q || undefined,
              needs_photos: needsPhotos || undefined,
              page,
              per_page: PER_PAGE,
            },
          },
          signal,
        }),
      ),
    [classId, q, needsPhotos, page],
  );
  const classNames = new Map((classes.data ?? []).map((c) => [c.id, c.name]));

  return (
    <section aria-labelledby="students-title">
      <header className="page-head row between">
        <h1 id="students-title">Students</h1>
        <div className="row gap">
          <a className="button-like primary" href={href('/students/new')}>
            Register a student
          </a>
          <a className="button-like" href={href('/students/batches')}>
            Batch upload
          </a>
        </div>
      </header>
      <div className="card filters">
        <Field label="Search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Name or roll number" />
        <ClassSelect classes={classes.data ?? []} value={classId} onChange={(v) => set({ class: v })} allowAll="All classes" />
        <div className="field">
          <label htmlFor="status-filter">Status</label>
          <select id="status-filter" value={status} onChange={(e) => set({ status: e.target.value })}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <label className="check">
          <input type="checkbox" checked={needsPhotos} onChange={(e) => set({ needs_photos: e.target.checked ? 'true' : '' })} />{' '}
          Needs new photos
        </label>
      </div>
      <AsyncView state={students} label="Loading students…">
        {(p) => {
          // The API filters by class, text and photos; the status filter applies to this page.
          const items = status ? p.items.filter((s) => s.status === status) : p.items;
          const pages = Math.max(1, Math.ceil(p.total / p.per_page));
          return (
            <>
              {items.length === 0 ? (
                <Empty>No students match.</Empty>
              ) : (
                <div className="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Roll no.</th>
                        <th scope="col">Name</th>
                        <th scope="col">Class</th>
                        <th scope="col">Status</th>
                      </tr>
                    </thead>
                    <tbody>
                      {items.map((s) => (
                        <tr key={s.id}>
                          <td>{s.roll_no}</td>
                          <td>
                            <a href={href(`/students/${s.id}`)}>{s.name}</a>
                          </td>
                          <td>{classNames.get(s.class_id) ?? '…'}</td>
                          <td>
                            <span className={`badge ${s.status}`}>{s.status}</span>
                            {s.needs_photos && <span className="badge failed">needs photos</span>}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <nav className="row between pager" aria-label="Pages">
                <span className="hint">
                  {p.total} student{p.total === 1 ? '' : 's'} · page {p.page} of {pages}
                </span>
                <span className="row gap">
                  <button type="button" disabled={page <= 1} onClick={() => set({ page: String(page - 1) })}>
                    Previous
                  </button>
                  <button type="button" disabled={page >= pages} onClick={() => set({ page: String(page + 1) })}>
                    Next
                  </button>
                </span>
              </nav>
            </>
          );
        }}
      </AsyncView>
    </section>
  );
}
