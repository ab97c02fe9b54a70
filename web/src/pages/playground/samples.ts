/** A first program per language, shown when the Playground opens on a language with no code yet. */
const SAMPLES: Record<string, string> = {
  python: 'import sys\n\nname = sys.stdin.readline().strip() or "world"\nprint(f"hello, {name}")\n',
  node: 'const input = require("fs").readFileSync(0, "utf8").trim();\nconsole.log(`hello, ${input || "world"}`);\n',
  typescript: 'const name: string = "world";\nconsole.log(`hello, ${name}`);\n',
  bash: 'read -r name || true\necho "hello, ${name:-world}"\n',
  c: '#include <stdio.h>\n\nint main(void) {\n    printf("hello, world\\n");\n    return 0;\n}\n',
  'c-wasm': '#include <stdio.h>\n\nint main(void) {\n    printf("hello from WebAssembly\\n");\n    return 0;\n}\n',
  cpp: '#include <iostream>\n\nint main() {\n    std::cout << "hello, world" << std::endl;\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello, world")\n}\n',
  rust: 'fn main() {\n    println!("hello, world");\n}\n',
  java: 'public class Main {\n    public static void main(String[] args) {\n        System.out.println("hello, world");\n    }\n}\n',
  ruby: 'puts "hello, world"\n',
  php: '<?php\necho "hello, world\\n";\n',
  perl: 'print "hello, world\\n";\n',
  lua: 'print("hello, world")\n',
};

export function sample(language: string): string {
  return SAMPLES[language] ?? '';
}

/** True when `code` is some language's sample (switching language may then replace it). */
export function isSample(code: string): boolean {
  return code.trim() === '' || Object.values(SAMPLES).includes(code);
}
