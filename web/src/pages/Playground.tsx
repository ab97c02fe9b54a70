/** Playground: a placeholder (the page is built on top of this skeleton; see web/README.md). */
import type { JSX } from 'preact';
import { Placeholder } from '../components/ui';
import type { PageProps } from '../pages';

export default function Playground(_props: PageProps): JSX.Element {
  return (
    <Placeholder title="Playground" what="Run code in a language of your choice, see its output and verdict; shareable by URL." />
  );
}
