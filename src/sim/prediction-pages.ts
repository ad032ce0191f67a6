/**
 * `GET /v1/predictions` paging: newest first, 100 a page, opaque cursors. A cursor names a position in creation order
 * and a direction, so pages stay stable while new predictions arrive (they only ever appear before page one).
 */

export const PAGE_SIZE = 100;

export interface Cursor {
  /** `older`: predictions created before `sequence` (the `next` page); `newer`: after it (`previous`). */
  readonly direction: 'older' | 'newer';
  readonly sequence: number;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.direction === 'older' ? 'o' : 'n'}${cursor.sequence}`, 'utf8').toString('base64url');
}

export function decodeCursor(text: string): Cursor | undefined {
  const decoded = Buffer.from(text, 'base64url').toString('utf8');
  const match = /^([on])(\d{1,15})$/.exec(decoded);
  if (!match) return undefined;
  return { direction: match[1] === 'o' ? 'older' : 'newer', sequence: Number(match[2]) };
}

export interface Page<T> {
  readonly results: T[];
  readonly next?: Cursor;
  readonly previous?: Cursor;
}

/** `items` are in creation order (ascending `sequence`) and already filtered; the page comes back newest first. */
export function pageOf<T extends { readonly sequence: number }>(
  items: readonly T[],
  cursor: Cursor | undefined,
  pageSize: number = PAGE_SIZE,
): Page<T> {
  let slice: readonly T[];
  if (cursor === undefined) {
    slice = items.slice(Math.max(0, items.length - pageSize));
  } else if (cursor.direction === 'older') {
    const older = items.filter((item) => item.sequence < cursor.sequence);
    slice = older.slice(Math.max(0, older.length - pageSize));
  } else {
    slice = items.filter((item) => item.sequence > cursor.sequence).slice(0, pageSize);
  }
  const first = slice[0];
  const last = slice[slice.length - 1];
  if (first === undefined || last === undefined) return { results: [] };
  const hasOlder = items.some((item) => item.sequence < first.sequence);
  const hasNewer = items.some((item) => item.sequence > last.sequence);
  return {
    results: [...slice].reverse(),
    ...(hasOlder ? { next: { direction: 'older', sequence: first.sequence } } : {}),
    ...(hasNewer ? { previous: { direction: 'newer', sequence: last.sequence } } : {}),
  };
}
