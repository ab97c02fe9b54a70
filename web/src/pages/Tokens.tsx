/**
 * Tokens: create one (its secret is shown this once: the daemon keeps only its sha256), list
 * them, revoke. A token acts as the user who made it; users see only their own.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, post, seg } from '../api';
import { Ago } from '../components/Ago';
import { type Column, Table } from '../components/Table';
import { Card, ConfirmButton, ErrorBox, PageHeader, useLoad } from '../components/ui';
import { CopyButton } from '../components/CopyButton';
import type { PageProps } from '../pages';

interface TokenInfo {
  id: string;
  name: string;
  createdAt: string;
  owner: string | null;
}

export default function Tokens(_props: PageProps): JSX.Element {
  const list = useLoad((signal) => get<{ tokens: TokenInfo[] }>('/v1/tokens', undefined, signal));
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [made, setMade] = useState<(TokenInfo & { token: string }) | undefined>(undefined);

  const create = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      setMade(await post<TokenInfo & { token: string }>('/v1/tokens', { name: name.trim() }));
      setName('');
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (id: string): Promise<void> => {
    setError(undefined);
    try {
      await del(`/v1/tokens/${seg(id)}`);
      if (made?.id === id) setMade(undefined);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };

  const columns: Column<TokenInfo>[] = [
    { key: 'name', label: 'Name', sort: (t) => t.name },
    { key: 'id', label: 'Id', sort: (t) => t.id, render: (t) => <code>{t.id}</code> },
    {
      key: 'owner',
      label: 'Acts as',
      sort: (t) => t.owner ?? '',
      render: (t) => t.owner ?? <span class="muted">nobody (old token)</span>,
    },
    {
      key: 'createdAt',
      label: 'Created',
      sort: (t) => t.createdAt,
      render: (t) => <Ago time={t.createdAt} />,
    },
    {
      key: 'actions',
      label: '',
      render: (t) => (
        <ConfirmButton
          label="Revoke"
          danger
          question={`Revoke token "${t.name}" (${t.id})? Anything using it is refused from now on.`}
          onConfirm={() => revoke(t.id)}
        />
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Tokens" />
      <Card title="New token">
        <form class="row" onSubmit={(e) => void create(e)}>
          <label for="token-name">Name</label>
          <input
            id="token-name"
            required
            maxLength={64}
            pattern="[\w .@\-]+"
            title="letters, digits, space and _ . @ -"
            value={name}
            placeholder="ci, laptop, …"
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <button type="submit" class="primary" disabled={busy || !name.trim()}>
            Create
          </button>
        </form>
        {made && (
          <div class="secret" role="status">
            <p>
              Token <strong>{made.name}</strong> — copy it now: it is shown this once.
            </p>
            <div class="row">
              <code class="secret-value" id="token-secret">
                {made.token}
              </code>
              <CopyButton text={made.token} label="Copy token" selectId="token-secret" />
              <button type="button" class="ghost" onClick={() => setMade(undefined)}>
                Done
              </button>
            </div>
          </div>
        )}
      </Card>
      <ErrorBox error={error ?? list.error} />
      <Table
        label="Tokens"
        rows={list.data?.tokens ?? []}
        columns={columns}
        rowKey={(t) => t.id}
        initialSort={{ key: 'createdAt', desc: true }}
        empty={list.loading ? 'Loading…' : 'No tokens yet.'}
      />
    </>
  );
}
