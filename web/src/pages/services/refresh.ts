/**
 * When the Services page reloads: on the event stream's app events and its replicas' sandbox
 * events (labelled realm.service), and — since a replica's health changing is no event — the
 * one services list every 10 s while the tab is visible (one request for all; never per sandbox).
 */
import { useEffect } from 'preact/hooks';
import { isType, useEvents } from '../../events';
import { useThrottled } from '../../components/ui';

export function useServiceRefresh(reload: () => void): void {
  const soon = useThrottled(reload, 500);
  useEvents((e) => {
    if (isType(e, 'app') || (isType(e, 'sandbox') && e.labels?.['realm.service'] !== undefined)) soon();
  });
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') soon();
    }, 10_000);
    return () => clearInterval(t);
  }, [soon]);
}
