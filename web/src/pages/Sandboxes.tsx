/** Sandboxes (being built: see the ui branch). */
import type { JSX } from 'preact';
import { Placeholder } from '../components/ui';
import type { PageProps } from '../pages';

export default function Sandboxes(_props: PageProps): JSX.Element {
  return <Placeholder title="Sandboxes" what="Coming in the next commit." />;
}
