/**
 * The path below a page's own (`/ui/jobs/build` → "build" for the Jobs page), decoded. Pages get
 * it as `rest`; this reads the location too, so a detail page opens whichever the router fills.
 */
import { useLocation } from 'preact-iso';
import { href } from '../pages';

export function useBelow(slug: string, rest: string): string {
  const { path } = useLocation();
  if (rest) return rest;
  const own = `${href(slug)}/`;
  return path.startsWith(own) ? path.slice(own.length).split('/').map(decodeURIComponent).join('/') : '';
}
