// End-to-end tests in Debian's Chromium (no browser download) against a real
// attendance-api that e2e/global-setup.ts starts in embedded mode.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'e2e',
  // One server, one browser at a time: the 2-core machines run the face engine too.
  workers: 1,
  fullyParallel: false,
  timeout: 300_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  globalSetup: './e2e/global-setup.ts',
  outputDir: '../../target/ui-test-results',
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // The machines have no network beyond the package registries: Chromium's own
      // background connections would only fail.
      args: [
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    trace: 'off',
  },
});
