/**
 * Every shipped language, for real: the language image is built from Debian packages (cached
 * across test runs by recipe hash), then each language runs a program that reads stdin and its
 * arguments (verdict ok), a compile error (compile-error, for compiled ones) and a runtime error
 * (runtime-error). Skipped only when the host cannot sandbox or cannot reach the archive.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sandbox, images, languages, run, RealmError } from '@realm/sdk';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE_CACHE, buildSkipReason, cached } from '../helpers/images.js';
import { wasmSkipReason } from '../helpers/wasm.js';
import { findRecipe } from '../../src/images/build/recipe.js';
import { IMAGE_RECIPES_DIR } from '../../src/util/paths.js';

const recipe = findRecipe('langs', [IMAGE_RECIPES_DIR])?.input;
const skip = (await namespaceSkipReason()) ?? (cached(recipe) ? undefined : await buildSkipReason());
if (skip) console.log(`# skipping language tests: ${skip}`);
const wasmSkip = await wasmSkipReason();

const HELLO = 'hello, world\nargs: a b\n';

/** For each shipped language: a program that greets its stdin and echoes its args; errors. */
const PROGRAMS: Record<string, { ok: string; compileError?: string; runtimeError: string }> = {
  // C compiled to wasm on the node, run by the wasm driver (a trap is its runtime error).
  'c-wasm': {
    ok: '#include <stdio.h>\nint main(int argc, char **argv) {\n  char name[64];\n  if (!fgets(name, sizeof name, stdin)) return 1;\n  for (char *p = name; *p; p++) if (*p == \'\\n\') *p = 0;\n  printf("hello, %s\\nargs:", name);\n  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);\n  printf("\\n");\n  return 0;\n}\n',
    compileError: 'int main(void) { return undeclared; }\n',
    runtimeError: 'int main(void) { __builtin_trap(); }\n',
  },
  python: {
    ok: 'import sys\nname = sys.stdin.readline().strip()\nprint(f"hello, {name}")\nprint("args:", " ".join(sys.argv[1:]))\n',
    runtimeError: 'print(1 / 0)\n',
  },
  node: {
    ok: "const name = require('fs').readFileSync(0, 'utf8').split('\\n')[0];\nconsole.log(`hello, ${name}`);\nconsole.log('args: ' + process.argv.slice(2).join(' '));\n",
    runtimeError: "throw new Error('boom');\n",
  },
  typescript: {
    // Typed by @types/node: the callback's parameter needs no annotation under --strict.
    ok: "let input = '';\nprocess.stdin.on('data', (d) => { input += d.toString(); });\nprocess.stdin.on('end', () => {\n  console.log(`hello, ${input.split('\\n')[0]}`);\n  const args: string[] = process.argv.slice(2);\n  console.log('args: ' + args.join(' '));\n});\n",
    compileError: 'const n: number = "not a number";\nconsole.log(n);\n',
    runtimeError: "throw new Error('boom');\n",
  },
  bash: {
    ok: 'read -r name\necho "hello, $name"\necho "args: $*"\n',
    runtimeError: 'echo failing >&2\nexit 3\n',
  },
  ruby: {
    ok: 'name = STDIN.gets.chomp\nputs "hello, #{name}"\nputs "args: #{ARGV.join(\' \')}"\n',
    runtimeError: "raise 'boom'\n",
  },
  php: {
    ok: '<?php\n$name = trim(fgets(STDIN));\necho "hello, $name\\n";\necho "args: " . implode(" ", array_slice($argv, 1)) . "\\n";\n',
    runtimeError: "<?php\nthrow new Exception('boom');\n",
  },
  perl: {
    ok: 'my $name = <STDIN>;\nchomp $name;\nprint "hello, $name\\n";\nprint "args: @ARGV\\n";\n',
    runtimeError: 'die "boom\\n";\n',
  },
  lua: {
    ok: 'local name = io.read("l")\nprint("hello, " .. name)\nprint("args: " .. table.concat(arg, " "))\n',
    runtimeError: 'error("boom")\n',
  },
  c: {
    ok: '#include <stdio.h>\n#include <string.h>\nint main(int argc, char **argv) {\n  char name[100] = "";\n  if (!fgets(name, sizeof name, stdin)) return 1;\n  name[strcspn(name, "\\n")] = 0;\n  printf("hello, %s\\nargs:", name);\n  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);\n  printf("\\n");\n  return 0;\n}\n',
    compileError: 'int main(void) { return undeclared; }\n',
    runtimeError: '#include <stdlib.h>\nint main(void) { abort(); }\n',
  },
  cpp: {
    ok: '#include <iostream>\n#include <string>\nint main(int argc, char **argv) {\n  std::string name;\n  std::getline(std::cin, name);\n  std::cout << "hello, " << name << "\\nargs:";\n  for (int i = 1; i < argc; i++) std::cout << " " << argv[i];\n  std::cout << "\\n";\n}\n',
    compileError: 'int main() { std::string s; }\n',
    runtimeError: '#include <stdexcept>\nint main() { throw std::runtime_error("boom"); }\n',
  },
  go: {
    ok: 'package main\n\nimport (\n\t"bufio"\n\t"fmt"\n\t"os"\n\t"strings"\n)\n\nfunc main() {\n\tname, _ := bufio.NewReader(os.Stdin).ReadString(\'\\n\')\n\tfmt.Printf("hello, %s\\n", strings.TrimSpace(name))\n\tfmt.Printf("args: %s\\n", strings.Join(os.Args[1:], " "))\n}\n',
    compileError: 'package main\n\nfunc main() {\n\tx := 1\n}\n',
    runtimeError: 'package main\n\nfunc main() {\n\tpanic("boom")\n}\n',
  },
  rust: {
    ok: 'use std::io::BufRead;\n\nfn main() {\n    let mut name = String::new();\n    std::io::stdin().lock().read_line(&mut name).unwrap();\n    println!("hello, {}", name.trim());\n    let args: Vec<String> = std::env::args().skip(1).collect();\n    println!("args: {}", args.join(" "));\n}\n',
    compileError: 'fn main() {\n    let x: i32 = "s";\n}\n',
    runtimeError: 'fn main() {\n    panic!("boom");\n}\n',
  },
  java: {
    ok: 'import java.io.*;\n\npublic class Main {\n  public static void main(String[] args) throws IOException {\n    BufferedReader r = new BufferedReader(new InputStreamReader(System.in));\n    System.out.println("hello, " + r.readLine().trim());\n    System.out.println("args: " + String.join(" ", args));\n  }\n}\n',
    compileError: 'public class Main {\n  public static void main(String[] args) {\n    int x = "s";\n  }\n}\n',
    runtimeError:
      'public class Main {\n  public static void main(String[] args) {\n    throw new RuntimeException("boom");\n  }\n}\n',
  },
};

// A language an operator adds with a file, no code change: python with -O, in the built image.
const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-'));
mkdirSync(join(dataDir, 'languages'));
writeFileSync(
  join(dataDir, 'languages', 'pyopt.toml'),
  'name = "pyopt"\naliases = ["python-optimized"]\nimage = "langs"\nfile = "main.py"\nrun = ["/usr/bin/python3", "-O", "main.py"]\nversion = ["/usr/bin/python3", "--version"]\n',
);

void describe('languages', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 1, dataDir, imageCacheDir: TEST_IMAGE_CACHE }, skip);

  void it('a language whose image is not built yet says which command builds it', async () => {
    await assert.rejects(run({ language: 'go', code: 'package main\nfunc main() {}\n' }, t.client), (e: RealmError) => {
      assert.equal(e.code, 'IMAGE_NOT_FOUND');
      assert.match(e.message, /realm image build langs/);
      return true;
    });
    await assert.rejects(
      Sandbox.create({ image: 'langs' }, t.client),
      (e: RealmError) => e.code === 'IMAGE_NOT_FOUND' && /realm image build langs/.test(e.message),
    );
    const list = await languages(t.client);
    assert.equal(list.find((l) => l.name === 'go')?.ready, false);
    assert.equal(list.find((l) => l.name === 'python')?.ready, true);
  });

  void it('builds the language image (from the cache when a run before built it)', { timeout: 20 * 60_000 }, async () => {
    const started = Date.now();
    const phases: string[] = [];
    const r = await images.build({ name: 'langs' }, { onProgress: (p) => phases.push(p.phase) }, t.client);
    console.log(
      `# langs image: ${r.cache}, ${(r.bytes / 1024 ** 2).toFixed(0)} MiB tarball, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.ok(['built', 'tarball'].includes(r.cache));
    assert.equal(phases.at(-1), 'done');
    const again = await images.build({ name: 'langs' }, {}, t.client);
    assert.equal(again.cache, 'installed');
    assert.equal(again.hash, r.hash);
  });

  void it('lists every language with its version, asked of its toolchain in its image', async () => {
    const list = await languages(t.client);
    for (const l of list) {
      assert.equal(l.ready, true, l.name);
      assert.match(l.version, /^\d+\.\d+/, `${l.name}: ${l.version}`);
    }
    for (const name of Object.keys(PROGRAMS))
      assert.ok(
        list.some((l) => l.name === name),
        `${name} is shipped`,
      );
    // Every shipped language has test programs here (wasm's are modules, built in test/e2e/wasm.test.ts).
    for (const l of list) if (l.name !== 'pyopt' && l.name !== 'wasm') assert.ok(PROGRAMS[l.name], `test programs for ${l.name}`);
  });

  for (const [language, p] of Object.entries(PROGRAMS)) {
    void it(
      `${language}: reads stdin and args (ok)${p.compileError ? ', compile error' : ''}, runtime error`,
      { timeout: 5 * 60_000, skip: language === 'c-wasm' && wasmSkip ? `the wasm driver: ${wasmSkip}` : false },
      async () => {
        const limits = { compileTimeout: '120s', timeout: '30s' };
        const ok = await run({ language, code: p.ok, stdin: 'world\n', args: ['a', 'b'], ...limits }, t.client);
        assert.equal(ok.verdict, 'ok', `${language}: ${ok.stderr}${ok.compile?.stderr ?? ''}`);
        assert.equal(ok.stdout, HELLO);
        if (p.compileError) {
          const ce = await run({ language, code: p.compileError, ...limits }, t.client);
          assert.equal(ce.verdict, 'compile-error', `${language}: ${ce.stdout}${ce.stderr}`);
          assert.ok(ce.compile && ce.compile.stdout + ce.compile.stderr !== '', `${language}: the compiler says why`);
        }
        const re = await run({ language, code: p.runtimeError, ...limits }, t.client);
        assert.equal(re.verdict, 'runtime-error', `${language}: ${re.stderr}`);
        assert.ok(re.compile === undefined || re.compile.verdict === 'ok');
        assert.deepEqual(await leftovers(t), []);
      },
    );
  }

  void it('a language added as a file in the data dir runs with no code change', async () => {
    const r = await run({ language: 'python-optimized', code: 'assert False\nprint("asserts are off")\n' }, t.client);
    assert.equal(r.verdict, 'ok', r.stderr);
    assert.equal(r.stdout, 'asserts are off\n');
  });
});
