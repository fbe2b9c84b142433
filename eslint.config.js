// The style the code was written in (standard: no semicolons, 2-space
// indent, single quotes, a space before a function's parens), checked by
// neostandard, as fastify's and undici's repositories do. `npm run lint`
// runs it; `npm test` runs it before the suite. Every rule switched off or
// loosened here says why; the ones marked "after the kernel move" are listed
// in docs/DECISIONS.md and get switched back on when nobody else is editing.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

// Lines longer than the 200-character ceiling below, written before the
// linter existed. They are allowed up to 350 characters in these files only;
// after the kernel move they are wrapped and this list goes (DECISIONS.md).
const LONG_LINES = [
  'src/faultline.ts',
  'src/intent/engine.ts',
  'src/intent/experiment-report.ts',
  'test/hardening/fuzz.test.ts',
  'test/intent/engine.test.ts',
  'test/kubernetes-fields.test.ts',
  'test/observability/prometheus-server.ts',
]

const maxLen = (code) => ['error', {
  code,
  // A message or a fixture reads better whole than wrapped mid-sentence.
  ignoreStrings: true,
  ignoreTemplateLiterals: true,
  ignoreRegExpLiterals: true,
  ignoreUrls: true,
}]

export default [
  { ignores: [...resolveIgnoresFromGitignore(), 'docs/**', 'docker/**', 'deploy/**'] },
  ...neostandard({ ts: true }),
  {
    rules: {
      // `void promise` marks a promise that is deliberately not awaited (its
      // errors are handled where it is made); as an expression it stays banned.
      'no-void': ['error', { allowAsStatement: true }],
      // `while (!done) await ...` loops wait on state a callback sets; the
      // rule cannot see the callback and reports each such loop.
      'no-unmodified-loop-condition': 'off',
      // The config substitutes `${ENV}` inside strings, so tests and docs
      // write that text on purpose.
      'no-template-curly-in-string': 'off',
      // A sane width. 200 is a ceiling the current code meets; lowering it to
      // 140 is listed in DECISIONS.md as work for after the kernel move.
      '@stylistic/max-len': maxLen(200),
    },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // `_name` marks a binding that is unused on purpose (a destructured
      // field left out of a copy, a stream chunk that only counts).
      '@typescript-eslint/no-unused-vars': ['error', {
        args: 'none',
        caughtErrors: 'none',
        ignoreRestSiblings: true,
        varsIgnorePattern: '^_',
      }],
    },
  },
  { files: LONG_LINES, rules: { '@stylistic/max-len': maxLen(350) } },
]
