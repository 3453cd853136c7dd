// What a participant presents: a document (an image file, drawn on a canvas that is streamed)
// or the screen (getDisplayMedia). Either way one video track for the presentation m-line.

/** The largest document picture sent, in pixels: sharp text, a sane bitrate. */
const MAX_WIDTH = 1920;
const MAX_HEIGHT = 1080;
/** A document hardly changes: a few frames a second keep it fresh for late joiners. */
const DOCUMENT_FPS = 5;

/** A presentation being sent, and how to end it. */
export interface Presentation {
  track: MediaStreamTrack;
  stop(): void;
}

/** Reads an image file and streams it as a still picture (letterboxed to 16:9 at most 1080p). */
export async function presentDocument(file: File): Promise<Presentation> {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_WIDTH / bitmap.width, MAX_HEIGHT / bitmap.height);
  const canvas = document.createElement('canvas');
  // Even sizes: video encoders want them.
  canvas.width = Math.max(2, Math.round((bitmap.width * scale) / 2) * 2);
  canvas.height = Math.max(2, Math.round((bitmap.height * scale) / 2) * 2);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  const draw = () => {
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  };
  draw();
  const stream = canvas.captureStream(DOCUMENT_FPS);
  const track = stream.getVideoTracks()[0];
  if (!track) throw new Error('the canvas gives no video track');
  // A canvas only yields frames when drawn: redraw so the picture keeps coming.
  const timer = window.setInterval(draw, 1000 / DOCUMENT_FPS);
  return {
    track,
    stop() {
      window.clearInterval(timer);
      track.stop();
      bitmap.close();
    },
  };
}

/** Asks the browser for a screen or window to share. */
export async function presentScreen(): Promise<Presentation> {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  const track = stream.getVideoTracks()[0];
  if (!track) throw new Error('no screen was chosen');
  return { track, stop: () => track.stop() };
}
