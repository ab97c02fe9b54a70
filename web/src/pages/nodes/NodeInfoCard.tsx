/** The node that answered (GET /v1/node): version, host, drivers (and why one is missing), what the operator opened. */
import type { JSX } from 'preact';
import { Badge } from '../../components/ui';

export interface NodeInfo {
  version: string;
  platform: string;
  hostname: string;
  dataDir: string;
  sandboxes: number;
  drivers: { name: string; available: boolean; reason?: string; details: Record<string, string | number | boolean> }[];
  imageBuilds?: { available: boolean; reason?: string; version?: string };
  anonymous?: string[];
  warnings?: string[];
  egress?: { networkAll: string; allowPrivate: string[] };
  cluster?: { id: string; clustered: boolean; fenced: boolean; tags: string[]; scheduler: string | null };
}

export function NodeInfoCard(props: { info: NodeInfo }): JSX.Element {
  const n = props.info;
  return (
    <>
      <dl class="kv">
        <dt>Host</dt>
        <dd>
          {n.hostname} · {n.platform}
        </dd>
        <dt>Version</dt>
        <dd>{n.version}</dd>
        <dt>Sandboxes</dt>
        <dd>{n.sandboxes} live</dd>
        <dt>Data dir</dt>
        <dd>
          <code>{n.dataDir}</code>
        </dd>
        {n.cluster && (
          <>
            <dt>Cluster</dt>
            <dd>
              {n.cluster.clustered ? `node ${n.cluster.id}` : 'a lone node'}
              {n.cluster.fenced && (
                <>
                  {' '}
                  <Badge value="fenced" />
                </>
              )}
              {n.cluster.scheduler && ` · scheduler: ${n.cluster.scheduler}`}
            </dd>
          </>
        )}
        {n.imageBuilds && (
          <>
            <dt>Image builds</dt>
            <dd>
              {n.imageBuilds.available ? `yes (mmdebstrap ${n.imageBuilds.version ?? ''})` : `no: ${n.imageBuilds.reason ?? ''}`}
            </dd>
          </>
        )}
        {n.egress && (
          <>
            <dt>Network “all” reaches</dt>
            <dd>
              {n.egress.networkAll}
              {n.egress.allowPrivate.length > 0 && ` and ${n.egress.allowPrivate.join(', ')}`}
            </dd>
          </>
        )}
        {n.anonymous && n.anonymous.length > 0 && (
          <>
            <dt>Open without a token</dt>
            <dd>{n.anonymous.join(', ')}</dd>
          </>
        )}
      </dl>
      <div class="table-scroll">
        <table aria-label="Drivers">
          <thead>
            <tr>
              <th>Driver</th>
              <th>Available</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {n.drivers.map((d) => (
              <tr key={d.name}>
                <td>{d.name}</td>
                <td>
                  <Badge value={d.available ? 'ok' : 'unavailable'} />
                </td>
                <td class="wrap">
                  {d.available
                    ? Object.entries(d.details)
                        .map(([k, v]) => `${k}: ${String(v)}`)
                        .join(' · ')
                    : d.reason}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {n.warnings && n.warnings.length > 0 && (
        <ul class="warnings">
          {n.warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      )}
    </>
  );
}
