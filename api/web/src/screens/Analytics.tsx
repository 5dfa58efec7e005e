// Per-class figures: % per student against the threshold, the weekly trend, who is
// under the threshold, per subject; exports.
import { useEffect, useState } from 'react';
import { api, unwrap } from '../api/client';
import { BarChart, LineChart } from '../components/charts';
import { ClassSelect } from '../components/ClassSelect';
import { DownloadButton } from '../components/DownloadButton';
import { Field } from '../components/Field';
import { AsyncView, Empty } from '../components/states';
import { browserUtcOffset, formatPercent } from '../format';
import { href, navigate } from '../router';
import { useAsync } from '../useAsync';

export function Analytics({ query }: { query: URLSearchParams }) {
  const classId = query.get('class') ?? '';
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const threshold = query.get('threshold') ?? '75';
  const set = (changes: Record<string, string>) => navigate('/analytics', { class: classId, from, to, threshold, ...changes });
  const [thresholdInput, setThresholdInput] = useState(threshold);
  useEffect(() => setThresholdInput(threshold), [threshold]);

  const classes = useAsync((signal) => unwrap(api.GET('/classes', { signal })), []);
  // With one class only there is nothing to choose.
  useEffect(() => {
    if (!classId && classes.data?.length === 1) set({ class: classes.data[0].id });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [classes.data, classId]);
  const utcOffset = browserUtcOffset();
  const figures = useAsync(
    async (signal) =>
      classId
        ? unwrap(
            api.GET('/analytics/classes/{id}', {
              params: {
                path: { id: classId },
                query: { from: from || undefined, to: to || undefined, threshold: Number(threshold), utc_offset: utcOffset },
              },
              signal,
            }),
          )
        : null,
    [classId, from, to, threshold],
  );
  const exportQuery = new URLSearchParams({ class_id: classId, utc_offset: utcOffset });
  if (from) exportQuery.set('from', from);
  if (to) exportQuery.set('to', to);

  return (
    <section aria-labelledby="analytics-title">
      <header className="page-head">
        <h1 id="analytics-title">Analytics</h1>
      </header>
      <div className="card filters">
        <ClassSelect classes={classes.data ?? []} value={classId} onChange={(v) => set({ class: v })} />
        <Field label="From" type="date" value={from} onChange={(e) => set({ from: e.target.value })} />
        <Field label="To" type="date" value={to} onChange={(e) => set({ to: e.target.value })} />
        <Field
          label="Threshold (%)"
          type="number"
          min={0}
          max={100}
          value={thresholdInput}
          onChange={(e) => setThresholdInput(e.target.value)}
          onBlur={() => thresholdInput !== threshold && set({ threshold: thresholdInput })}
          onKeyDown={(e) => e.key === 'Enter' && set({ threshold: thresholdInput })}
        />
      </div>
      {!classId ? (
        <Empty>Choose a class to see its figures.</Empty>
      ) : (
        <AsyncView state={figures} label="Loading figures…">
          {(a) =>
            !a ? null : a.sessions_held === 0 ? (
              <Empty>
                No completed sessions in this period. <a href={href('/')}>Take attendance</a>.
              </Empty>
            ) : (
              <>
                <div className="summary" aria-label="Summary">
                  <span className="stat">
                    <b>{a.sessions_held}</b> sessions
                  </span>
                  <span className="stat">
                    <b>{formatPercent(a.average_percentage)}</b> average attendance
                  </span>
                  <span className="stat">
                    <b>{a.average_present?.toFixed(1) ?? '—'}</b> present per session
                  </span>
                  <span className="row gap">
                    <DownloadButton path={`/export/attendance?${exportQuery}&format=csv`} fileName="attendance.csv" label="Export CSV" />
                    <DownloadButton path={`/export/attendance?${exportQuery}&format=xlsx`} fileName="attendance.xlsx" label="Export XLSX" />
                  </span>
                </div>
                <div className="card">
                  <h2>Attendance per student</h2>
                  <BarChart
                    threshold={a.threshold}
                    label={`Attendance percentage per student, with the ${a.threshold}% line`}
                    bars={a.students.map((s) => ({ label: s.roll_no, value: s.percentage }))}
                  />
                </div>
                <div className="card">
                  <h2>Weekly trend</h2>
                  {a.weekly.length === 0 ? (
                    <Empty>No weeks with sessions.</Empty>
                  ) : (
                    <LineChart label="Attendance percentage per week" points={a.weekly.map((w) => ({ label: w.week, value: w.percentage }))} />
                  )}
                </div>
                <div className="two-col">
                  <div className="card">
                    <h2>Under {a.threshold}%</h2>
                    {a.below_threshold.length === 0 ? (
                      <Empty>Nobody is under the threshold.</Empty>
                    ) : (
                      <ul aria-label="Students under the threshold">
                        {a.below_threshold.map((s) => (
                          <li key={s.student_id}>
                            <a href={href(`/students/${s.student_id}`)}>{s.name}</a> ({s.roll_no}): {formatPercent(s.percentage)}, {s.attended} of{' '}
                            {s.total}
                          </li>
                        ))}
                      </ul>
                    )}
                  </div>
                  <div className="card">
                    <h2>Per subject</h2>
                    <div className="table-wrap">
                      <table>
                        <thead>
                          <tr>
                            <th scope="col">Subject</th>
                            <th scope="col">Sessions</th>
                            <th scope="col">Attended</th>
                            <th scope="col">%</th>
                          </tr>
                        </thead>
                        <tbody>
                          {a.subjects.map((s, i) => (
                            <tr key={`${s.subject ?? ''}-${i}`}>
                              <td>{s.subject ?? '(none)'}</td>
                              <td>{s.sessions}</td>
                              <td>
                                {s.attended} / {s.total}
                              </td>
                              <td>{formatPercent(s.percentage)}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  </div>
                </div>
              </>
            )
          }
        </AsyncView>
      )}
    </section>
  );
}
