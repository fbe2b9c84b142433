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

// Files with lines of 141 to 200 characters, written before the width
// came down to 140: allowed 200 until they are wrapped. Shrink-only: a file
// leaves the list when its long lines are wrapped; nothing new joins it.
const WIDE_LINES = [
  'bench/run.mjs',
  'scripts/check-deps.mjs',
  'src/admin/deferrals.ts',
  'src/admin/experiments.ts',
  'src/admin/server.ts',
  'src/alerts/notifier.ts',
  'src/config/headers.ts',
  'src/config/suggest.ts',
  'src/core/context.ts',
  'src/deferral/defer-step.ts',
  'src/deferral/redis-store.ts',
  'src/deferral/schema.ts',
  'src/deferral/service.ts',
  'src/demo/run.ts',
  'src/failure-report/endpoints.ts',
  'src/failure-report/report.ts',
  'src/faults/fault-set.ts',
  'src/faults/match.ts',
  'src/faults/planned.ts',
  'src/faults/schema.ts',
  'src/fleet/breaker.ts',
  'src/fleet/budget.ts',
  'src/fleet/fleet-cache-store.ts',
  'src/fleet/levels.ts',
  'src/fleet/redis.ts',
  'src/intent/controller.ts',
  'src/intent/experiment.ts',
  'src/intent/plan-print.ts',
  'src/intent/schema.ts',
  'src/intent/slo-tracker.ts',
  'src/metrics/metrics.ts',
  'src/policies/auth-guard.ts',
  'src/policies/breaker.ts',
  'src/policies/cache-store.ts',
  'src/policies/cache.ts',
  'src/policies/fallback.ts',
  'src/policies/index.ts',
  'src/policies/schema.ts',
  'src/proxy/headers.ts',
  'src/proxy/route.ts',
  'src/proxy/upgrade.ts',
  'test/config-watch.test.ts',
  'test/deferral/fixtures.ts',
  'test/deferral/journal-store.test.ts',
  'test/docker-fleet.test.ts',
  'test/docker.test.ts',
  'test/faults/admin.test.ts',
  'test/faults/fixtures.ts',
  'test/faults/schedule-time.test.ts',
  'test/fleet/cache-store.test.ts',
  'test/fleet/fleet.ts',
  'test/fleet/prometheus-rules.test.ts',
  'test/fleet/resume.test.ts',
  'test/hardening/process.test.ts',
  'test/hardening/upstream.test.ts',
  'test/helpers.ts',
  'test/hot-path.test.ts',
  'test/intent/control-plane.test.ts',
  'test/intent/controller.test.ts',
  'test/kubernetes-objects.ts',
  'test/kubernetes.test.ts',
  'test/observability/alerts-webhook.test.ts',
  'test/observability/dashboard.test.ts',
  'test/observability/status-page.test.ts',
  'test/observability/tools.ts',
  'test/policies/cache-store-contract.ts',
  'test/policies/containment-cache.test.ts',
  'test/policies/fixtures.ts',
  'test/process.test.ts',
  'test/proxy/respond.test.ts',
  'test/reload-inflight.test.ts',
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
      // A sane width, as undici's and fastify's code keeps (messages, URLs
      // and patterns excepted). Older files over it are in WIDE_LINES.
      '@stylistic/max-len': maxLen(140),
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
  { files: WIDE_LINES, rules: { '@stylistic/max-len': maxLen(200) } },
  { files: LONG_LINES, rules: { '@stylistic/max-len': maxLen(350) } },
]
