/** Tokens: a placeholder (the page is built on top of this skeleton; see web/README.md). */
import type { JSX } from 'preact';
import { Placeholder } from '../components/ui';
import type { PageProps } from '../pages';

export default function Tokens(_props: PageProps): JSX.Element {
  return <Placeholder title="Tokens" what="API tokens: create, list, revoke." />;
}
