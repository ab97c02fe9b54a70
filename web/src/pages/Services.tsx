/** Services: a placeholder (the page is built on top of this skeleton; see web/README.md). */
import type { JSX } from 'preact';
import { Placeholder } from '../components/ui';
import type { PageProps } from '../pages';

export default function Services(_props: PageProps): JSX.Element {
  return <Placeholder title="Services" what="Process services: replicas, health, scale, restart, logs." />;
}
