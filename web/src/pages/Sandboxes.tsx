/** Sandboxes: the list (`/ui/sandboxes`) and one sandbox (`/ui/sandboxes/<id>[/terminal|files|processes]`). */
import type { JSX } from 'preact';
import { SandboxDetail } from '../components/sandbox/Detail';
import { SandboxList } from '../components/sandbox/List';
import type { PageProps } from '../pages';

export default function Sandboxes(props: PageProps): JSX.Element {
  const [id, tab] = props.rest.split('/');
  return id ? <SandboxDetail id={id} tab={tab ?? ''} /> : <SandboxList />;
}
