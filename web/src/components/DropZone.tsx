/** Files by drag and drop, or by the file picker inside it (the keyboard way). */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

export function DropZone(props: {
  id: string;
  label: string;
  onFiles: (files: File[]) => void;
  disabled?: boolean;
}): JSX.Element {
  const [over, setOver] = useState(false);
  return (
    <div
      class={`dropzone ${over ? 'over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const files = [...(e.dataTransfer?.files ?? [])];
        if (files.length && !props.disabled) props.onFiles(files);
      }}
    >
      <label for={props.id}>{props.label}</label>
      <p class="muted">Drop files here, or </p>
      <input
        id={props.id}
        type="file"
        multiple
        disabled={props.disabled}
        onChange={(e) => {
          const files = [...(e.currentTarget.files ?? [])];
          e.currentTarget.value = '';
          if (files.length) props.onFiles(files);
        }}
      />
    </div>
  );
}
