// Bulk registration in the browser: a ZIP of one folder per roll number (and a
// students.csv with the names) uploaded with progress, the outcome table until the
// batch has finished, and its CSV report.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { adminKey, apiCall, fixture, screenshot, signIn } from './app';

/** The ZIP, written with Python's zipfile (Node has no ZIP writer). */
function batchZip(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'attendance-batch-')), 'class.zip');
  const entries = {
    'students.csv': 'roll_no,name\n22EC001,Rose Leslie\n22EC002,Kit Harington\n',
    '22EC001/a.jpg': fixture('people/rose_leslie/rose1.jpg'),
    '22EC001/b.jpg': fixture('people/rose_leslie/rose2.jpg'),
    '22EC002/a.jpeg': fixture('people/kit_harington/kit1.jpeg'),
    '22EC002/notes.txt': 'not a photo',
  };
  const script = `
import json, sys, zipfile
entries = json.loads(sys.argv[2])
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for name, value in entries.items():
        if name.endswith('.csv') or name.endswith('.txt'):
            z.writestr(name, value)
        else:
            z.write(value, name)
`;
  execFileSync('python3', ['-c', script, path, JSON.stringify(entries)]);
  return path;
}

test('a ZIP registers a class, with the outcome per student and the report', async ({ page }) => {
  await apiCall(adminKey(), 'POST', '/classes', { name: 'ECE 1A', department: 'ECE' });
  await signIn(page, adminKey());
  await page.getByRole('link', { name: 'Students' }).click();
  await page.getByRole('link', { name: 'Batch upload' }).click();
  await page.getByLabel('Default class').selectOption({ label: 'ECE 1A (ECE)' });
  await page.getByLabel('ZIP file').setInputFiles(batchZip());
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page).toHaveURL(/#\/students\/batches\/[0-9a-f-]{36}$/);
  await expect(page.locator('.badge').first()).toHaveText('completed', { timeout: 180_000 });
  const rows = page.locator('tbody tr');
  await expect(rows.filter({ hasText: 'Rose Leslie' })).toContainText('active');
  await expect(rows.filter({ hasText: 'Kit Harington' })).toContainText('active');
  await expect(rows.filter({ hasText: 'notes.txt' })).toContainText('rejected');
  await screenshot(page, '14-batch');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download report (CSV)' }).click(),
  ]);
  const report = readFileSync((await download.path())!, 'utf8');
  expect(report.split(/\r?\n/)[0]).toMatch(/^roll_no,name,status,reason/);
  expect(report).toMatch(/22EC001,Rose Leslie,active/);
});
