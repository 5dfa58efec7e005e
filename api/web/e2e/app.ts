// What the end-to-end tests share: the server global-setup started, the fixture
// photos, signing in, screenshots, and direct API calls for setup the test is not about.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, type Page } from '@playwright/test';

const REPO = resolve(import.meta.dirname, '../../..');
export const FACES = join(REPO, 'worker/tests/fixtures/faces');
export const SCREENSHOTS = join(REPO, 'target/ui-screenshots');

export function base(): string {
  const b = process.env.E2E_BASE_URL;
  if (!b) throw new Error('E2E_BASE_URL is not set: global setup did not run');
  return b;
}

export function adminKey(): string {
  return process.env.E2E_ADMIN_KEY!;
}

/** The fixture people, registered from their first two photos (as api/tests/api/e2e.rs). */
export const PEOPLE = [
  { roll: '21CS001', name: 'Barack Obama', photos: ['people/obama/obama1.jpg', 'people/obama/obama2.jpg'] },
  { roll: '21CS002', name: 'Joe Biden', photos: ['people/biden/biden1.jpg', 'people/biden/biden2.jpg'] },
  { roll: '21CS003', name: 'Alex Lacamoire', photos: ['people/alex_lacamoire/alex1.jpg', 'people/alex_lacamoire/alex2.png'] },
  { roll: '21CS004', name: 'Kit Harington', photos: ['people/kit_harington/kit1.jpeg', 'people/kit_harington/kit2.jpeg'] },
  { roll: '21CS005', name: 'Rose Leslie', photos: ['people/rose_leslie/rose1.jpg', 'people/rose_leslie/rose2.jpg'] },
];
/** One session over both photos: everyone but Alex is in them (labels.json). */
export const GROUPS = ['groups/obama_biden_side_by_side.jpg', 'groups/rose_and_kit.jpg'];
export const PRESENT = ['Barack Obama', 'Joe Biden', 'Kit Harington', 'Rose Leslie'];

export const fixture = (p: string) => join(FACES, p);

export async function signIn(page: Page, key: string): Promise<void> {
  await page.goto(`${base()}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A JSON call straight to the API, for setup that the test is not about. */
export async function apiCall<T>(key: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${base()}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The page's content is no wider than its viewport (readable without side-scrolling). */
export async function expectNoSideScroll(page: Page): Promise<void> {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  expect(scroll).toBeLessThanOrEqual(width);
}
