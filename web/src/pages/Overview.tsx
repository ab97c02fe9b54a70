/** Overview (being built: see the ui branch). */
import type { JSX } from 'preact';
import { Placeholder } from '../components/ui';
import type { PageProps } from '../pages';

export default function Overview(_props: PageProps): JSX.Element {
  return <Placeholder title="Overview" what="Coming in the next commit." />;
}
