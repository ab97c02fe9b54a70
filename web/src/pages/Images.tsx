/**
 * Images and languages: the image store (names, digest, sizes, source; export, remove, prune),
 * the languages with their versions and whether their image is built, the images built from
 * recipes, and building or pulling one with its log as it happens (root only).
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, download, get, me, post, seg } from '../api';
import { bytes } from '../components/format';
import { Ago } from '../components/Ago';
import { type Column, Table } from '../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad } from '../components/ui';
import type { PageProps } from '../pages';
import type { LanguageInfo } from './playground/run';
import { ImageTask } from './images/ImageTask';
import type { BuiltImage, ImageInfo } from './images/types';
import '../components/extras.css';

const ROOT_ONLY = 'Only root (the admin token) changes images';

export default function Images(_props: PageProps): JSX.Element {
  const images = useLoad((signal) => get<{ images: ImageInfo[] }>('/v1/images', undefined, signal));
  const built = useLoad((signal) => get<{ images: BuiltImage[] }>('/v1/images/built', undefined, signal));
  const langs = useLoad((signal) => get<{ languages: LanguageInfo[] }>('/v1/languages', undefined, signal));
  const [source, setSource] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [note, setNote] = useState<string | undefined>(undefined);
  const admin = me.value?.admin === true;
  const reloadAll = (): void => {
    images.reload();
    built.reload();
    langs.reload();
  };
  const act = async (fn: () => Promise<void>): Promise<void> => {
    setError(undefined);
    setNote(undefined);
    try {
      await fn();
      reloadAll();
    } catch (e) {
      setError(e);
    }
  };

  const imageCols: Column<ImageInfo>[] = [
    {
      key: 'names',
      label: 'Names',
      sort: (i) => i.names[0] ?? '',
      text: (i) => i.names.join(' '),
      render: (i) => i.names.join(', ') || <span class="muted">(untagged)</span>,
    },
    {
      key: 'digest',
      label: 'Digest',
      sort: (i) => i.digest,
      render: (i) => <code title={i.digest}>{i.digest.slice(7, 19)}</code>,
    },
    { key: 'source', label: 'Source', sort: (i) => i.source },
    { key: 'size', label: 'Size', numeric: true, sort: (i) => i.size, render: (i) => bytes(i.size) },
    { key: 'unpacked', label: 'Unpacked', numeric: true, sort: (i) => i.unpackedSize, render: (i) => bytes(i.unpackedSize) },
    { key: 'layers', label: 'Layers', numeric: true, sort: (i) => i.layers, render: (i) => i.layers },
    {
      key: 'createdAt',
      label: 'Created',
      sort: (i) => i.createdAt,
      render: (i) => <Ago time={i.createdAt} />,
    },
    {
      key: 'actions',
      label: '',
      render: (i) => {
        const ref = i.names[0] ?? i.digest;
        return (
          <div class="row">
            <button
              type="button"
              onClick={() =>
                void act(() => download(`/v1/images/${seg(ref)}/export`, `${ref.replace(/[^A-Za-z0-9._-]+/g, '_')}.tar`))
              }
            >
              Export
            </button>
            <ConfirmButton
              label="Remove"
              danger
              disabled={!admin}
              question={`Remove ${ref}? Refused while a sandbox uses it.`}
              onConfirm={() => act(() => del(`/v1/images/${seg(ref)}`))}
            />
          </div>
        );
      },
    },
  ];
  const langCols: Column<LanguageInfo>[] = [
    { key: 'name', label: 'Language', sort: (l) => l.name, text: (l) => `${l.name} ${l.aliases.join(' ')}` },
    {
      key: 'version',
      label: 'Version',
      sort: (l) => l.version,
      render: (l) => (l.ready ? <span class="mono">{l.version}</span> : '—'),
    },
    { key: 'image', label: 'Image', sort: (l) => l.image },
    {
      key: 'ready',
      label: 'Ready',
      sort: (l) => (l.ready ? 1 : 0),
      render: (l) => <Badge value={l.ready ? 'ready' : 'not built'} />,
    },
    {
      key: 'compiled',
      label: 'Kind',
      sort: (l) => (l.compiled ? 1 : 0),
      render: (l) => (l.compiled ? 'compiled' : 'interpreted'),
    },
    { key: 'aliases', label: 'Aliases', text: (l) => l.aliases.join(' '), render: (l) => l.aliases.join(', ') },
  ];
  const builtCols: Column<BuiltImage>[] = [
    { key: 'name', label: 'Name', sort: (b) => b.name },
    { key: 'from', label: 'From', sort: (b) => b.from },
    {
      key: 'packages',
      label: 'Packages',
      text: (b) => b.packages.join(' '),
      render: (b) => <span title={b.packages.join(' ')}>{b.packages.length} packages</span>,
    },
    { key: 'bytes', label: 'Size', numeric: true, sort: (b) => b.bytes, render: (b) => bytes(b.bytes) },
    { key: 'hash', label: 'Recipe', render: (b) => <code title={b.hash}>{b.hash.slice(0, 12)}</code> },
    {
      key: 'createdAt',
      label: 'Built',
      sort: (b) => b.createdAt,
      render: (b) => {
        const iso = new Date(b.createdAt).toISOString();
        return <Ago time={iso} />;
      },
    },
  ];

  const sources = [...new Set((images.data?.images ?? []).map((i) => i.source))].sort();
  return (
    <>
      <PageHeader title="Images">
        <ConfirmButton
          label="Prune"
          disabled={!admin}
          question="Remove the blobs and unpacked roots no image or sandbox uses?"
          onConfirm={() =>
            act(async () => {
              const r = await post<{ blobs: number; unpacked: number; bytes: number }>('/v1/images/prune');
              setNote(`Pruned ${r.blobs} blobs and ${r.unpacked} unpacked roots: ${bytes(r.bytes)} freed.`);
            })
          }
        />
      </PageHeader>
      {!admin && <p class="muted">{ROOT_ONLY}: you can list and export them.</p>}
      {note && (
        <p role="status" class="muted">
          {note}
        </p>
      )}
      <ErrorBox error={error ?? images.error} />
      <Table
        label="Images"
        rows={(images.data?.images ?? []).filter((i) => !source || i.source === source)}
        columns={imageCols}
        rowKey={(i) => i.digest}
        initialSort={{ key: 'createdAt', desc: true }}
        empty={images.loading ? 'Loading…' : 'No images in the store: the host image needs none.'}
        toolbar={
          <div class="row filters">
            <label for="img-source">Source</label>
            <select id="img-source" value={source} onChange={(e) => setSource(e.currentTarget.value)}>
              <option value="">any</option>
              {sources.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </div>
        }
      />
      <Card title="Languages">
        <ErrorBox error={langs.error} />
        <Table
          label="Languages"
          rows={langs.data?.languages ?? []}
          columns={langCols}
          rowKey={(l) => l.name}
          initialSort={{ key: 'name' }}
        />
      </Card>
      <Card title="Built from recipes">
        <ErrorBox error={built.error} />
        <Table
          label="Built images"
          rows={built.data?.images ?? []}
          columns={builtCols}
          rowKey={(b) => b.digest}
          search={false}
          empty="None yet: build langs for go, rust, java, ruby, php and more."
        />
      </Card>
      <div class="split">
        <Card title="Build an image">
          <ImageTask kind="build" disabled={!admin} onDone={reloadAll} />
        </Card>
        <Card title="Pull an image">
          <ImageTask kind="pull" disabled={!admin} onDone={reloadAll} />
        </Card>
      </div>
    </>
  );
}
