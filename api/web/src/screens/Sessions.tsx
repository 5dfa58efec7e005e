// Session history by class and date range; each opens the result screen. The class's
// attendance over the range exports as CSV or XLSX.
import { api, unwrap } from '../api/client';
import { ClassSelect } from '../components/ClassSelect';
import { DownloadButton } from '../components/DownloadButton';
import { Field } from '../components/Field';
import { AsyncView, Empty } from '../components/states';
import { browserUtcOffset, formatDateTime } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

export function Sessions({ query }: { query: URLSearchParams }) {
  const classId = query.get('class') ?? '';
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const set = (changes: Record<string, string>) =>
    navigate('/sessions', { class: classId, from, to, ...changes });

  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  const sessions = useAsync(
    (signal) =>
      unwrap(
        api.GET('/attendance/sessions', {
          params: { query: { class_id: classId || undefined, from: from || undefined, to: to || undefined } },
          signal,
        }),
      ),
    [classId, from, to],
  );
  const names = new Map((classes.data ?? []).map((c) => [c.id, c.name]));
  const exportQuery = new URLSearchParams({ class_id: classId, utc_offset: browserUtcOffset() });
  if (from) exportQuery.set('from', from);
  if (to) exportQuery.set('to', to);

  return (
    <section aria-labelledby="sessions-title">
      <header className="page-head">
        <h1 id="sessions-title">Sessions</h1>
      </header>
      <div className="card filters">
        <ClassSelect classes={classes.data ?? []} value={classId} onChange={(v) => set({ class: v })} allowAll="All classes" />
        <Field label="From" type="date" value={from} onChange={(e) => set({ from: e.target.value })} />
        <Field label="To" type="date" value={to} onChange={(e) => set({ to: e.target.value })} />
        {classId ? (
          <div className="row gap">
            <DownloadButton path={`/export/attendance?${exportQuery}&format=csv`} fileName="attendance.csv" label="Export CSV" />
            <DownloadButton path={`/export/attendance?${exportQuery}&format=xlsx`} fileName="attendance.xlsx" label="Export XLSX" />
          </div>
        ) : (
          <p className="hint">Choose a class to export its attendance.</p>
        )}
      </div>
      <AsyncView state={sessions} label="Loading sessions…">
        {(list) =>
          list.length === 0 ? (
            <Empty>No sessions match. Take attendance from the home screen.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Taken</th>
                    <th scope="col">Class</th>
                    <th scope="col">Subject</th>
                    <th scope="col">Status</th>
                    <th scope="col">Warnings</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((s) => (
                    <tr key={s.id}>
                      <td>
                        <a href={href(`/sessions/${s.id}`)}>{formatDateTime(s.taken_at)}</a>
                      </td>
                      <td>{names.get(s.class_id) ?? '…'}</td>
                      <td>{s.subject || '—'}</td>
                      <td>
                        <span className={`badge ${s.status}`}>{s.status}</span>
                      </td>
                      <td>{s.warnings.length > 0 ? `⚠ ${s.warnings.length}` : ''}</td>
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
