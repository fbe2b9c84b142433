// The layer rules (docs/ARCHITECTURE.md, "Layers"), checked in `npm test`
// by scripts/check-deps.mjs. Bottom to top: the kernel, the features, the
// assembly, the entry points. A module may import its own layer and the
// layers below it, never one above; and nothing may form an import cycle,
// type-only imports included. Violations that existed when these rules were
// written are listed in .dependency-cruiser-known-violations.json; the
// kernel move (docs/KERNEL-MOVE.md) empties that list, and it may only shrink.

// The kernel: what every request and every policy or fault speaks (src/core/),
// and the leaf vocabulary below it: config units and errors, util, the logger.
const KERNEL = [
  '^src/core/',
  '^src/config/(errors|suggest|units|headers|http-methods|secret-keys)\\.ts$',
  '^src/util/',
  '^src/(log|version)\\.ts$',
]
// The features: each builds on the kernel alone (and on other features).
const FEATURES = ['^src/(faults|policies|intent|failure-report|metrics|alerts|deferral|fleet)/']
// The assembly: the proxy listener and route runtime, the admin API, the
// config file (its schema composes every feature's schema).
const ASSEMBLY = ['^src/(proxy|admin|config)/', '^src/listen-error\\.ts$']
// The entry points: the composition root, the CLI, the package's exports, the demo.
const TOP = ['^src/(faultline|cli|index)\\.ts$', '^src/demo/']

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle (type-only imports count): the modules in it cannot be understood, tested or moved apart. Point the import downward: move the shared piece (an interface, a type) to the lower layer.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'kernel-imports-kernel-only',
      comment: 'The kernel sits at the bottom: it may not import features, the assembly or the entry points. Define the narrow interface it needs in the kernel and let the upper layer implement it.',
      severity: 'error',
      from: { path: KERNEL },
      to: { path: '^src/', pathNot: KERNEL },
    },
    {
      name: 'features-below-assembly',
      comment: 'Faults, policies, intent, the failure report, metrics, alerts, deferral and fleet sit below the assembly (src/proxy/ outside the kernel, src/admin/, src/config/ outside its leaf vocabulary) and the entry points: they may import the kernel and each other, never upward.',
      severity: 'error',
      from: { path: FEATURES },
      to: { path: [...ASSEMBLY, ...TOP], pathNot: KERNEL },
    },
    {
      name: 'assembly-below-entry-points',
      comment: 'The assembly may not import faultline.ts, cli.ts, index.ts or the demo: they compose it, not the other way round.',
      severity: 'error',
      from: { path: ASSEMBLY, pathNot: KERNEL },
      to: { path: TOP },
    },
    {
      name: 'feature-schemas-compose-downward',
      comment: 'A feature\'s config schema (schema.ts, or xxx-schema.ts) may import the kernel, its own folder and other features\' schemas, nothing else; src/config/schema.ts composes them all, in one direction.',
      severity: 'error',
      from: { path: '^src/(faults|policies|intent|alerts|deferral|fleet)/[a-z-]*schema\\.ts$' },
      to: { path: '^src/', pathNot: [...KERNEL, '^src/$1/', '^src/(faults|policies|intent|alerts|deferral|fleet)/[a-z-]*schema\\.ts$'] },
    },
    {
      name: 'entry-points-not-imported',
      comment: 'cli.ts and index.ts are entry points: nothing in src imports them.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/(cli|index)\\.ts$' },
    },
    {
      name: 'src-not-to-test',
      comment: 'Shipped code may not import tests, bench or scripts.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'src-not-to-dev-deps',
      comment: 'Shipped code may not import a devDependency: `npm ci --omit=dev` (the Docker image) does not install it.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a cycle through `import type` still ties the
    // modules together for a reader and for a move.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.json'],
    },
  },
}
