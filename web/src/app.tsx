/** The app: the login form until a session holds, then the layout and the routed page. */
import type { FunctionComponent, JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { ErrorBoundary, LocationProvider, Route, Router } from 'preact-iso';
import { checkSession, session } from './api';
import { Layout } from './components/Layout';
import { Login } from './components/Login';
import { startEvents, stopEvents } from './events';
import { BASE, PAGES, href } from './pages';

function NotFound(): JSX.Element {
  return (
    <p>
      No such page. <a href={href('')}>Overview</a>
    </p>
  );
}

/**
 * Each page as a route: `/ui/<slug>/:sub*` (the Overview: `/ui`); what follows the slug is the
 * page's `rest`. (preact-iso keeps the prop `rest` for itself: the parameter is named `sub`.)
 */
const ROUTES: { path: string; component: FunctionComponent<{ sub?: string }> }[] = PAGES.map((p) => {
  const Page = p.component;
  return {
    path: p.slug ? `${BASE}/${p.slug}/:sub*` : BASE,
    component: (props: { sub?: string }) => <Page rest={props.sub ?? ''} />,
  };
});

export function App(): JSX.Element {
  useEffect(() => {
    void checkSession();
  }, []);
  const state = session.value;
  useEffect(() => {
    if (state === 'in') startEvents();
    else stopEvents();
  }, [state]);
  if (state === 'unknown') return <p class="loading">Loading…</p>;
  if (state === 'out') return <Login />;
  return (
    <LocationProvider scope={BASE}>
      <Layout>
        <ErrorBoundary>
          <Router>
            {[
              ...ROUTES.map((r) => <Route key={r.path} path={r.path} component={r.component} />),
              <Route key="404" default component={NotFound} />,
            ]}
          </Router>
        </ErrorBoundary>
      </Layout>
    </LocationProvider>
  );
}
