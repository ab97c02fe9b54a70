/**
 * When the Services page reloads: on the event stream's app and service events (pushes, scaling,
 * rollouts, replicas started, healthy, unhealthy, exited) and its replicas' sandbox events
 * (labelled realm.service); and, for what changes without an event (a replica's request counts),
 * the one services list every 30 s while the tab is visible (one request for all; never per sandbox).
 */
import { useEffect } from 'preact/hooks';
import { isType, useEvents } from '../../events';
import { useThrottled } from '../../components/ui';

export function useServiceRefresh(reload: () => void): void {
  const soon = useThrottled(reload, 500);
  useEvents((e) => {
    if (isType(e, 'app') || isType(e, 'service') || (isType(e, 'sandbox') && e.labels?.['realm.service'] !== undefined)) soon();
  });
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') soon();
    }, 30_000);
    return () => clearInterval(t);
  }, [soon]);
}
