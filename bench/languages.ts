/**
 * One-shot latency of every language: a hello world that reads stdin, through the daemon (SDK
 * over HTTP), compile included for compiled languages, against the same run of python on the
 * host image (the warm-pool fast path) measured in the same rounds. Builds the `langs` image
 * first (from the test cache when it holds it). `node dist/bench/languages.js`; always exits 0.
 */
import { images, run } from '@realm/sdk';
import { removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { TEST_IMAGE_CACHE } from '../test/helpers/images.js';
import { fmt, interleave, printLatencies, progress, progressDone, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'languages';

/** Hello world that reads one line of stdin, per language. */
const HELLO: Record<string, string> = {
  python: 'print("hello, " + input())\n',
  node: "console.log('hello, ' + require('fs').readFileSync(0, 'utf8').trim());\n",
  bash: 'read -r n; echo "hello, $n"\n',
  c: '#include <stdio.h>\nint main(void) { char n[64]; if (scanf("%63s", n) != 1) return 1; printf("hello, %s\\n", n); return 0; }\n',
  ruby: 'puts "hello, #{STDIN.gets.chomp}"\n',
  php: '<?php echo "hello, " . trim(fgets(STDIN)) . "\\n";\n',
  perl: 'my $n = <STDIN>; chomp $n; print "hello, $n\\n";\n',
  lua: 'print("hello, " .. io.read("l"))\n',
  typescript: "import * as fs from 'fs';\nconst n: string = fs.readFileSync(0, 'utf8').trim();\nconsole.log(`hello, ${n}`);\n",
  cpp: '#include <iostream>\n#include <string>\nint main() { std::string n; std::cin >> n; std::cout << "hello, " << n << "\\n"; }\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tvar n string\n\tfmt.Scan(&n)\n\tfmt.Println("hello, " + n)\n}\n',
  rust: 'fn main() {\n    let mut n = String::new();\n    std::io::stdin().read_line(&mut n).unwrap();\n    println!("hello, {}", n.trim());\n}\n',
  java: 'public class Main {\n  public static void main(String[] a) {\n    System.out.println("hello, " + new java.util.Scanner(System.in).next());\n  }\n}\n',
};

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 10;
  const warmup = opts.warmup ?? 2;
  console.log(
    `== ${BENCH}: one-shot hello world per language through the daemon (compile included) vs python on the host image; n=${n} each, interleaved, ${warmup} warm-up rounds`,
  );
  const t = await startTestDaemon({ imageCacheDir: TEST_IMAGE_CACHE });
  try {
    const built = await images.build({ name: 'langs' }, {}, t.client);
    console.log(`langs image: ${built.cache} in ${fmt(built.ms / 1000, 1)} s (${fmt(built.bytes / 1024 ** 2, 0)} MiB tarball)`);
    const compileMs = new Map<string, number[]>();
    const samples = await interleave(
      Object.entries(HELLO).map(([language, code]) => ({
        name: language,
        sample: async () => {
          const t0 = performance.now();
          const r = await run({ language, code, stdin: 'world\n', compileTimeout: '120s' }, t.client);
          const ms = performance.now() - t0;
          if (r.verdict !== 'ok' || r.stdout !== 'hello, world\n') throw new Error(`${language} failed: ${JSON.stringify(r)}`);
          if (r.compile) compileMs.set(language, [...(compileMs.get(language) ?? []), r.compile.wallMs]);
          return ms;
        },
        after: () => t.daemon.engine.settled(),
      })),
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const base = summarize(samples.get('python') ?? []);
    printLatencies([...samples].map(([name, s]) => [`${name} (ms)`, summarize(s)]));
    console.log('p50 ratio to python on host:');
    for (const [name, s] of samples) {
      const c = compileMs.get(name);
      console.log(
        `  ${name.padEnd(11)} ${fmt(summarize(s).p50 / base.p50).padStart(7)}x${c ? `   (compile p50 ${fmt(summarize(c).p50, 0)} ms)` : ''}`,
      );
    }
    return [];
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

runIfMain(import.meta.url, main);
