// What a participant presents: a document (a PDF, page by page, or an image file, drawn on a
// canvas that is streamed) or the screen (getDisplayMedia). Either way one video track for the
// presentation m-line.

/** The largest document picture sent, in pixels: sharp text, a sane bitrate. */
const MAX_WIDTH = 1920;
const MAX_HEIGHT = 1080;
/** A document hardly changes: a few frames a second keep it fresh for late joiners. */
const DOCUMENT_FPS = 5;

/** A presentation being sent, and how to end it. */
export interface Presentation {
  track: MediaStreamTrack;
  stop(): void;
  /** A PDF's pages: how many, which is shown (from 1), and turning to another. */
  pages?: Pages;
}

export interface Pages {
  readonly count: number;
  current(): number;
  show(page: number): Promise<void>;
}

/** The largest PDF a presenter may open, in bytes. */
export const MAX_PDF_BYTES = 50 * 1024 * 1024;

/** Whether `file` is a PDF (by its type, or its name when the browser gives no type). */
export function isPdf(file: File): boolean {
  return file.type === 'application/pdf' || (file.type === '' && /\.pdf$/i.test(file.name));
}

/**
 * Streams a picture drawn on `source` (redrawn onto the streamed canvas a few times a second,
 * since a canvas yields frames only when drawn).
 */
function streamCanvas(source: HTMLCanvasElement): { track: MediaStreamTrack; stop(): void } {
  const canvas = document.createElement('canvas');
  canvas.width = source.width;
  canvas.height = source.height;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  const draw = () => ctx.drawImage(source, 0, 0);
  draw();
  const track = canvas.captureStream(DOCUMENT_FPS).getVideoTracks()[0];
  if (!track) throw new Error('the canvas gives no video track');
  const timer = window.setInterval(draw, 1000 / DOCUMENT_FPS);
  return {
    track,
    stop() {
      window.clearInterval(timer);
      track.stop();
    },
  };
}

/**
 * Opens a PDF (rendered with pdf.js, loaded only now) and streams its first page; `pages`
 * turns to others. Each page is fitted into 1920x1080 on white.
 */
export async function presentPdf(file: File): Promise<Presentation> {
  if (file.size > MAX_PDF_BYTES) throw new Error(`the file is over ${MAX_PDF_BYTES / 1024 / 1024} MB`);
  const [pdfjs, worker] = await Promise.all([
    import('pdfjs-dist'),
    import('pdfjs-dist/build/pdf.worker.min.mjs?url'),
  ]);
  pdfjs.GlobalWorkerOptions.workerSrc = worker.default;
  const data = new Uint8Array(await file.arrayBuffer());
  const doc = await pdfjs.getDocument({ data, isEvalSupported: false }).promise;
  // The page streamed, and the one being drawn: a page appears whole, never half-drawn.
  const page = document.createElement('canvas');
  const drawing = document.createElement('canvas');
  for (const c of [page, drawing]) {
    c.width = MAX_WIDTH;
    c.height = MAX_HEIGHT;
  }
  const ctx = drawing.getContext('2d');
  const shownCtx = page.getContext('2d');
  if (!ctx || !shownCtx) throw new Error('no 2D canvas');
  let shown = 1;
  const render = async (n: number) => {
    const p = await doc.getPage(n);
    const natural = p.getViewport({ scale: 1 });
    const viewport = p.getViewport({ scale: Math.min(MAX_WIDTH / natural.width, MAX_HEIGHT / natural.height) });
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, drawing.width, drawing.height);
    const dx = Math.round((drawing.width - viewport.width) / 2);
    const dy = Math.round((drawing.height - viewport.height) / 2);
    await p.render({ canvas: drawing, canvasContext: ctx, viewport, transform: [1, 0, 0, 1, dx, dy] }).promise;
    shownCtx.drawImage(drawing, 0, 0);
  };
  await render(shown);
  const stream = streamCanvas(page);
  return {
    track: stream.track,
    stop() {
      stream.stop();
      void doc.destroy();
    },
    pages: {
      count: doc.numPages,
      current: () => shown,
      async show(n: number) {
        const next = Math.min(Math.max(1, Math.round(n)), doc.numPages);
        if (next === shown) return;
        shown = next;
        await render(next);
      },
    },
  };
}

/** Reads an image file and streams it as a still picture (fitted into 1920x1080 at most). */
export async function presentDocument(file: File): Promise<Presentation> {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_WIDTH / bitmap.width, MAX_HEIGHT / bitmap.height);
  const picture = document.createElement('canvas');
  // Even sizes: video encoders want them.
  picture.width = Math.max(2, Math.round((bitmap.width * scale) / 2) * 2);
  picture.height = Math.max(2, Math.round((bitmap.height * scale) / 2) * 2);
  const ctx = picture.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, picture.width, picture.height);
  ctx.drawImage(bitmap, 0, 0, picture.width, picture.height);
  bitmap.close();
  return streamCanvas(picture);
}

/** Asks the browser for a screen or window to share. */
export async function presentScreen(): Promise<Presentation> {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  const track = stream.getVideoTracks()[0];
  if (!track) throw new Error('no screen was chosen');
  return { track, stop: () => track.stop() };
}
