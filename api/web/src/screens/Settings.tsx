// Settings for admins and department admins: webhooks (add, test, delivery log,
// remove) and API keys (create with role and department, list with last use, revoke).
import { useId, useState } from 'react';
import { api, unwrap, type Schemas } from '../api/client';
import { roleLabel, useMe } from '../auth';
import { ConfirmButton } from '../components/ConfirmButton';
import { Field } from '../components/Field';
import { AsyncView, Empty, ErrorMessage } from '../components/states';
import { formatDateTime } from '../format';
import { useAsync } from '../useAsync';

export const EVENTS = ['attendance.session.completed', 'registration.batch.completed', 'job.failed'];

export function Settings() {
  return (
    <section aria-labelledby="settings-title">
      <header className="page-head">
        <h1 id="settings-title">Settings</h1>
      </header>
      <ApiKeys />
      <Webhooks />
    </section>
  );
}

function ApiKeys() {
  const me = useMe();
  const keys = useAsync((signal) => unwrap(api.GET('/keys', { signal })), []);
  const [role, setRole] = useState<Schemas['KeyRole']>('teacher');
  const [name, setName] = useState('');
  const [department, setDepartment] = useState(me.department ?? '');
  const [created, setCreated] = useState<Schemas['CreatedKeyOut'] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const roleId = useId();
  const roles: Schemas['KeyRole'][] = me.role === 'admin' ? ['teacher', 'department_admin', 'admin'] : ['teacher'];
  return (
    <div className="card">
      <h2 id="keys-title">API keys</h2>
      <form
        className="form inline-form"
        aria-label="New API key"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          setCreated(null);
          try {
            const key = await unwrap(
              api.POST('/keys', {
                body: { role, name: name.trim(), department: role === 'admin' ? undefined : department.trim() || undefined },
              }),
            );
            setCreated(key);
            setName('');
            keys.reload();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <div className="field">
          <label htmlFor={roleId}>Role</label>
          <select id={roleId} value={role} onChange={(e) => setRole(e.target.value as Schemas['KeyRole'])}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {roleLabel(r)}
              </option>
            ))}
          </select>
        </div>
        <Field label="Key name" value={name} onChange={(e) => setName(e.target.value)} required placeholder="Dr. Rao" />
        {role !== 'admin' && (
          <Field
            label="Key department"
            value={department}
            onChange={(e) => setDepartment(e.target.value)}
            required
            readOnly={me.role !== 'admin'}
          />
        )}
        <div className="row end">
          <button type="submit" className="primary">
            Create key
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      {created && (
        <div className="secret" role="status">
          <p>
            Key for <b>{created.name}</b>: copy it now, it is not shown again.
          </p>
          <output data-testid="new-key">{created.key}</output>
          <button type="button" onClick={() => void navigator.clipboard?.writeText(created.key)}>
            Copy
          </button>
        </div>
      )}
      <AsyncView state={keys} label="Loading keys…">
        {(list) =>
          list.length === 0 ? (
            <Empty>No keys.</Empty>
          ) : (
            <div className="table-wrap">
              <table aria-labelledby="keys-title">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Role</th>
                    <th scope="col">Department</th>
                    <th scope="col">Prefix</th>
                    <th scope="col">Last used</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((k) => (
                    <tr key={k.id} className={k.revoked_at ? 'revoked' : ''}>
                      <td>
                        {k.name}
                        {k.id === me.id && <small className="badge">you</small>}
                      </td>
                      <td>{roleLabel(k.role)}</td>
                      <td>{k.department ?? 'all'}</td>
                      <td>
                        <code>{k.prefix}…</code>
                      </td>
                      <td>{k.last_used_at ? formatDateTime(k.last_used_at) : 'never'}</td>
                      <td>
                        {k.revoked_at ? (
                          `revoked ${formatDateTime(k.revoked_at)}`
                        ) : k.id === me.id ? null : (
                          <ConfirmButton
                            className="link danger"
                            label={
                              <>
                                Revoke<span className="visually-hidden"> {k.name}</span>
                              </>
                            }
                            question={`Revoke the key "${k.name}"? Whoever uses it is refused from the next request on.`}
                            confirmLabel="Revoke"
                            onConfirm={async () => {
                              try {
                                await unwrap(api.DELETE('/keys/{id}', { params: { path: { id: k.id } } }));
                                keys.reload();
                              } catch (err) {
                                setError(err);
                              }
                            }}
                          />
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </AsyncView>
    </div>
  );
}

function Webhooks() {
  const hooks = useAsync((signal) => unwrap(api.GET('/webhooks', { signal })), []);
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>([EVENTS[0]]);
  const [created, setCreated] = useState<Schemas['CreatedWebhookOut'] | null>(null);
  const [error, setError] = useState<unknown>(null);
  return (
    <div className="card">
      <h2>Webhooks</h2>
      <form
        className="form"
        aria-label="New webhook"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          setCreated(null);
          try {
            const hook = await unwrap(api.POST('/webhooks', { body: { url: url.trim(), events } }));
            setCreated(hook);
            setUrl('');
            hooks.reload();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Receiver URL" type="url" value={url} onChange={(e) => setUrl(e.target.value)} required placeholder="https://hooks.example.edu/attendance" />
        <fieldset>
          <legend>Events</legend>
          {EVENTS.map((ev) => (
            <label key={ev} className="check">
              <input
                type="checkbox"
                checked={events.includes(ev)}
                onChange={(e) => setEvents(e.target.checked ? [...events, ev] : events.filter((x) => x !== ev))}
              />{' '}
              {ev}
            </label>
          ))}
        </fieldset>
        <div className="row end">
          <button type="submit" className="primary" disabled={events.length === 0}>
            Add webhook
          </button>
        </div>
      </form>
      <ErrorMessage error={error} />
      {created && (
        <div className="secret" role="status">
          <p>Signing secret for {created.url}: copy it now, it is not shown again.</p>
          <output>{created.secret}</output>
        </div>
      )}
      <AsyncView state={hooks} label="Loading webhooks…">
        {(list) =>
          list.length === 0 ? (
            <Empty>No webhooks. Add one to tell another system when attendance is taken.</Empty>
          ) : (
            <ul className="hooks">
              {list.map((h) => (
                <Webhook key={h.id} hook={h} onRemoved={hooks.reload} />
              ))}
            </ul>
          )
        }
      </AsyncView>
    </div>
  );
}

function Webhook({ hook, onRemoved }: { hook: Schemas['WebhookOut']; onRemoved: () => void }) {
  const [open, setOpen] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  return (
    <li className="hook">
      <div className="row between wrap">
        <span>
          <code>{hook.url}</code>
          <br />
          <small className="hint">
            {hook.events.join(', ')}
            {hook.department ? ` · ${hook.department} only` : ''}
          </small>
        </span>
        <span className="row gap">
          <button
            type="button"
            onClick={async () => {
              setError(null);
              try {
                const sent = await unwrap(api.POST('/webhooks/{id}/test', { params: { path: { id: hook.id } } }));
                setMessage(`Test delivery ${sent.delivery_id.slice(0, 8)} queued.`);
                setOpen(true);
                setTick((t) => t + 1);
              } catch (e) {
                setError(e);
              }
            }}
          >
            Send test
          </button>
          <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
            Delivery log
          </button>
          <ConfirmButton
            label="Remove"
            question={`Remove the webhook to ${hook.url}? Pending deliveries are given up.`}
            confirmLabel="Remove"
            onConfirm={async () => {
              try {
                await unwrap(api.DELETE('/webhooks/{id}', { params: { path: { id: hook.id } } }));
                onRemoved();
              } catch (e) {
                setError(e);
              }
            }}
          />
        </span>
      </div>
      {message && <p role="status">{message}</p>}
      <ErrorMessage error={error} />
      {open && <Deliveries id={hook.id} tick={tick} />}
    </li>
  );
}

function Deliveries({ id, tick }: { id: string; tick: number }) {
  const state = useAsync(
    (signal) => unwrap(api.GET('/webhooks/{id}/deliveries', { params: { path: { id }, query: { limit: 50 } }, signal })),
    [id, tick],
  );
  return (
    <AsyncView state={state} label="Loading deliveries…">
      {(list) =>
        list.length === 0 ? (
          <Empty>No deliveries yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Event</th>
                  <th scope="col">Status</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last answer</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {list.map((d) => (
                  <tr key={d.id}>
                    <td>{d.event}</td>
                    <td>
                      <span className={`badge ${d.status}`}>{d.status}</span>
                    </td>
                    <td>{d.attempts}</td>
                    <td>{d.last_error ?? (d.last_status ? `HTTP ${d.last_status}` : '—')}</td>
                    <td>{formatDateTime(d.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      }
    </AsyncView>
  );
}
