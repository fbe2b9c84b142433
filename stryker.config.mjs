// Mutation testing (StrykerJS): see docs/TESTING.md. Run it through
// `npm run mutate -- <file or folder>` (scripts/mutate.mjs), which scopes
// both the code mutated and the test files run, so one module takes minutes.
const folders = ['src/policies', 'src/faults', 'src/intent', 'src/proxy']
const tests = process.env.FAULTLINE_MUTATE_TESTS?.split(',') ?? ['test/**/*.test.ts']

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: folders.map((f) => `${f}/**/*.ts`),
  testRunner: 'tap',
  tap: {
    testFiles: tests,
    // tsx runs the instrumented TypeScript as `npx tap` does.
    nodeArgs: ['-r', '{{hookFile}}', '--import=tsx', '{{testFile}}'],
    forceBail: true
  },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // Each mutant runs only the test files that reached it in the dry run.
  coverageAnalysis: 'perTest',
  // The machine is shared: one test process at a time unless asked otherwise.
  concurrency: 1,
  // Real servers and real timers: an instrumented run is slower than npx tap.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 80, low: 60, break: null },
  // Not copied into the sandbox: tap's own output changes under a concurrent `npx tap`.
  ignorePatterns: ['.tap', '.test-build', 'coverage', 'reports', 'dist', 'bench/out'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: true
}
