/**
 * `realm job`: submit a TOML spec (with local files uploaded as inputs, and other jobs' artifacts
 * as inputs), list, status, logs (-f follows), cancel, artifacts, download, rm. A job is named by
 * its name (its latest run) or a run id.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Client, JobInfo, JobRun } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList } from '../action.js';
import { ago, printJson, printTable } from '../output.js';
import { formatSize } from '../../util/units.js';
import { uploadInputs } from './job-inputs.js';

const ENDED = ['succeeded', 'failed', 'cancelled'];

function lastRun(j: JobInfo): JobRun | undefined {
  return j.runs.at(-1);
}

function runLine(r: JobRun): string {
  const a = r.attempts.at(-1);
  const pos = r.state === 'queued' && r.position ? ` (#${r.position} in the queue)` : '';
  const tries = r.attempts.length > 1 ? `, attempt ${r.attempts.length}` : '';
  return `${r.id} ${r.state}${pos}${tries}${r.reason ? `: ${r.reason}` : ''}${a?.wallMs ? ` [${a.wallMs} ms]` : ''}`;
}

async function follow(c: Client, ref: string): Promise<void> {
  for await (const text of c.jobs.follow(ref)) process.stdout.write(text);
}

/** Wait for the run to have an attempt, then follow each attempt's log until the run ends. */
async function followRun(c: Client, runId: string): Promise<JobRun> {
  let shown = 0;
  for (;;) {
    const run = await c.jobs.run(runId);
    const latest = run.attempts.at(-1)?.n ?? 0;
    if (latest > shown) {
      shown = latest;
      if (latest > 1) process.stderr.write(`realm: attempt ${latest}\n`);
      for await (const text of c.jobs.follow(runId, { attempt: latest })) process.stdout.write(text);
      continue;
    }
    if (ENDED.includes(run.state)) return run;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function register(program: Command): void {
  const job = program.command('job').description('jobs: send work to this node and get the results back');
  job
    .command('submit')
    .description('submit a job spec (TOML); a batch job runs now, a cron job on its schedule')
    .argument('<file>', 'the spec, e.g. build.toml')
    .option(
      '--input <dest=path>',
      'upload a local file as an input placed at DEST (DEST/ ending in / unpacks an archive there); repeatable',
      collectList,
      [],
    )
    .option(
      '--use-artifact <job:name[=dest]>',
      "another job's artifact as an input (JOB, JOB#N or a run id); repeatable",
      collectList,
      [],
    )
    .option('--wait', 'wait for the run to end; exit non-zero unless it succeeded')
    .option('--follow', "print the run's log as it is written, then wait (implies --wait)")
    .option('--json', 'print JSON')
    .action(
      action(
        async (file: string, f: { input: string[]; useArtifact: string[]; wait?: boolean; follow?: boolean; json?: boolean }) => {
          const c = await client();
          const inputs = await uploadInputs(c, f.input, f.useArtifact);
          const spec = { toml: readFileSync(file, 'utf8'), ...(inputs.length ? { inputs } : {}) };
          // --wait: submitted and waited for in one request (a run still going after it is waited for on).
          const submitted = await c.jobs.submit(spec, f.wait && !f.follow ? { wait: 30 } : {});
          const run = lastRun(submitted);
          if (!run || !(f.wait || f.follow)) {
            if (f.json) printJson(submitted);
            else
              process.stdout.write(
                run
                  ? `${runLine(run)}\n`
                  : `${submitted.name} scheduled: ${submitted.schedule?.cron.join(', ')} (${submitted.schedule?.timezone})\n`,
              );
            return;
          }
          const ended = f.follow ? await followRun(c, run.id) : ENDED.includes(run.state) ? run : await c.jobs.wait(run.id);
          if (f.json) printJson(ended);
          else process.stderr.write(`realm: ${runLine(ended)}\n`);
          if (ended.state !== 'succeeded') process.exitCode = 1;
        },
      ),
    );
  job
    .command('ls')
    .description('your jobs and their latest runs')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await (await client()).jobs.list();
        if (f.json) return printJson(list);
        printTable(
          ['NAME', 'TYPE', 'RUNS', 'LATEST', 'STATE', 'REASON', 'UPDATED'],
          list.map((j) => {
            const r = lastRun(j);
            return [
              j.name,
              j.type,
              j.runs.length,
              r?.id ?? '-',
              r?.state ?? (j.type === 'cron' ? 'scheduled' : '-'),
              (r?.reason ?? '').slice(0, 60),
              ago(j.updatedAt),
            ];
          }),
        );
      }),
    );
  job
    .command('status')
    .description('a job (or run) with its runs, attempts, artifacts and events')
    .argument('<job>', 'a job name or a run id')
    .option('--json', 'print JSON')
    .action(
      action(async (ref: string, f: { json?: boolean }) => {
        const j = await (await client()).jobs.get(ref);
        if (f.json) return printJson(j);
        process.stdout.write(
          `${j.name} (${j.type}${j.schedule ? `: ${j.schedule.cron.join(', ')} ${j.schedule.timezone}` : ''})\n`,
        );
        printTable(
          ['RUN', 'N', 'STATE', 'ATTEMPTS', 'VERDICT', 'STARTED', 'REASON'],
          j.runs.map((r) => [
            r.id,
            r.n,
            r.state,
            r.attempts.length,
            r.attempts.at(-1)?.verdict ?? '-',
            ago(r.startedAt),
            (r.reason ?? '').slice(0, 70),
          ]),
        );
        const arts = lastRun(j)?.artifacts ?? [];
        if (arts.length) {
          process.stdout.write('\nartifacts of the latest run:\n');
          printTable(
            ['NAME', 'KIND', 'SIZE', 'OUTCOME', 'SHA256'],
            arts.map((a) => [a.name, a.kind, formatSize(a.size), a.outcome, a.sha256.slice(0, 12)]),
          );
        }
        if (j.events.length) {
          process.stdout.write('\nevents:\n');
          for (const e of j.events.slice(-10)) process.stdout.write(`  ${e.at} ${e.type}: ${e.reason}\n`);
        }
      }),
    );
  job
    .command('logs')
    .description("a run's log (the latest run of a job; its last attempt unless --attempt)")
    .argument('<job>', 'a job name or a run id')
    .option('-f, --follow', 'keep printing until the attempt ends')
    .option('--attempt <n>', 'an earlier attempt')
    .action(
      action(async (ref: string, f: { follow?: boolean; attempt?: string }) => {
        const c = await client();
        if (f.follow && !f.attempt) return void (await followRun(c, (await c.jobs.run(ref)).id));
        if (f.follow) return follow(c, ref);
        process.stdout.write(await c.jobs.log(ref, f.attempt ? Number(f.attempt) : undefined));
      }),
    );
  job
    .command('cancel')
    .description('cancel a run, or every active run of a job and its schedule')
    .argument('<job...>', 'job names or run ids')
    .action(
      action(async (refs: string[]) => {
        const c = await client();
        for (const r of refs) for (const run of await c.jobs.cancel(r)) process.stdout.write(`${runLine(run)}\n`);
      }),
    );
  job
    .command('artifacts')
    .description("a run's artifacts (the latest run of a job)")
    .argument('<job>', 'a job name or a run id')
    .option('--json', 'print JSON')
    .action(
      action(async (ref: string, f: { json?: boolean }) => {
        const arts = await (await client()).jobs.artifacts(ref);
        if (f.json) return printJson(arts);
        printTable(
          ['NAME', 'KIND', 'SIZE', 'OUTCOME', 'PATH', 'SHA256'],
          arts.map((a) => [a.name, a.kind, formatSize(a.size), a.outcome, a.path, a.sha256.slice(0, 12)]),
        );
      }),
    );
  job
    .command('download')
    .description('save an artifact (a directory comes as a tar)')
    .argument('<job>', 'a job name or a run id')
    .argument('<name>', 'the artifact')
    .argument('[out]', 'where to write it (default: its name; - for stdout)')
    .action(
      action(async (ref: string, name: string, out?: string) => {
        const c = await client();
        const data = await c.jobs.download(ref, name);
        if (out === '-') process.stdout.write(data);
        else writeFileSync(out ?? name, data, { mode: 0o755 });
      }),
    );
  job
    .command('rm')
    .description('remove jobs (every run, log and artifact) or ended runs')
    .argument('<job...>', 'job names or run ids')
    .action(
      action(async (refs: string[]) => {
        const c = await client();
        for (const r of refs) {
          await c.jobs.remove(r);
          process.stdout.write(`${r}\n`);
        }
      }),
    );
}
