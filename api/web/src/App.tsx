// The frame: sign-in gate, navigation by role, and the screen of the current route.
import { useEffect, useRef } from 'react';
import { isManager, roleLabel, useAuth } from './auth';
import { Loading } from './components/states';
import { href, useRoute, type Route } from './router';
import { Analytics } from './screens/Analytics';
import { Attendance } from './screens/Attendance';
import { Batch } from './screens/Batch';
import { ClassDetail, Classes } from './screens/Classes';
import { RegisterStudent } from './screens/RegisterStudent';
import { SessionDetail } from './screens/SessionDetail';
import { Sessions } from './screens/Sessions';
import { Settings } from './screens/Settings';
import { SignIn } from './screens/SignIn';
import { StudentDetail } from './screens/StudentDetail';
import { Students } from './screens/Students';

const NAV: { path: string; label: string; section: Route['name'][]; managers?: boolean }[] = [
  { path: '/', label: 'Attendance', section: ['attendance'] },
  { path: '/sessions', label: 'Sessions', section: ['sessions', 'session'] },
  { path: '/students', label: 'Students', section: ['students', 'student', 'student-new', 'batch'] },
  { path: '/classes', label: 'Classes', section: ['classes', 'class'] },
  { path: '/analytics', label: 'Analytics', section: ['analytics'] },
  { path: '/settings', label: 'Settings', section: ['settings'], managers: true },
];

export function App() {
  const { me, checking, signOut } = useAuth();
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  // A new screen moves keyboard and screen-reader focus to its content.
  useEffect(() => {
    main.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [route]);

  if (checking) return <Loading label="Checking your key…" />;
  if (!me) return <SignIn />;
  const manager = isManager(me.role);
  return (
    <>
      <a className="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header className="top">
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.managers || manager).map((n) => (
              <li key={n.path}>
                <a href={href(n.path)} aria-current={n.section.includes(route.name) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span data-testid="who">
            {me.name} · {roleLabel(me.role)}
            {me.department ? ` · ${me.department}` : ''}
          </span>
          <button type="button" className="link" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Screen route={route} manager={manager} />
      </main>
    </>
  );
}

function Screen({ route, manager }: { route: Route; manager: boolean }) {
  switch (route.name) {
    case 'attendance':
      return <Attendance />;
    case 'sessions':
      return <Sessions query={route.query} />;
    case 'session':
      return <SessionDetail id={route.id} />;
    case 'students':
      return <Students query={route.query} />;
    case 'student-new':
      return <RegisterStudent />;
    case 'student':
      return <StudentDetail id={route.id} />;
    case 'batch':
      return <Batch id={route.id} />;
    case 'classes':
      return <Classes />;
    case 'class':
      return <ClassDetail id={route.id} />;
    case 'analytics':
      return <Analytics query={route.query} />;
    case 'settings':
      return manager ? <Settings /> : <NotFound />;
    case 'not-found':
      return <NotFound />;
  }
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <a href={href('/')}>Back to attendance</a>
      </p>
    </section>
  );
}
