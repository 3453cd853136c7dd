// The grid of video tiles: one for the local preview, one per remote participant; and the
// hidden players of the audio slots (the SFU decides whose voices they carry).

import { t } from './i18n';

interface Tile {
  root: HTMLElement;
  video: HTMLVideoElement;
  caption: HTMLElement;
  avatar: HTMLElement;
  waiting: HTMLElement;
  /** The name as the server gave it; null while unknown. */
  name: string | null;
  self: boolean;
}

export class TileGrid {
  private readonly tiles = new Map<number, Tile>();
  private readonly players = new Map<string, HTMLAudioElement>();

  /** Called when tiles come, go or change size: the view sent to the SFU must follow. */
  onLayoutChange: () => void = () => {};

  private readonly resizes = new ResizeObserver(() => this.onLayoutChange());

  /** Called when the browser refuses to play a remote video with sound. */
  onAutoplayBlocked: () => void = () => {};

  constructor(private readonly root: HTMLElement) {
    this.resizes.observe(root);
  }

  /** The remote tiles as shown: whose, and how many device pixels high. */
  view(): { participant: number; height: number }[] {
    const ratio = window.devicePixelRatio || 1;
    return [...this.tiles]
      .filter(([, tile]) => !tile.self)
      .map(([id, tile]) => ({ participant: id, height: Math.round(tile.root.clientHeight * ratio) }));
  }

  addSelf(id: number, name: string, stream: MediaStream): void {
    const tile = this.create(id, name, true);
    this.attach(tile, stream);
  }

  /** Shows a participant, as a placeholder until their media arrives. */
  setName(id: number, name: string): void {
    const tile = this.tiles.get(id) ?? this.create(id, name, false);
    tile.name = name;
    this.label(id, tile);
  }

  /** Shows `track` in participant `id`'s tile (null: back to the placeholder). */
  setVideo(id: number, track: MediaStreamTrack | null): void {
    const tile = this.tiles.get(id) ?? this.create(id, null, false);
    if (track === null) {
      tile.video.srcObject = null;
      tile.root.classList.remove('has-video');
      return;
    }
    const current = tile.video.srcObject;
    if (current instanceof MediaStream && current.getTracks()[0] === track) return;
    this.attach(tile, new MediaStream([track]));
  }

  /** Plays an audio slot. */
  addAudio(mid: string, track: MediaStreamTrack): void {
    if (this.players.has(mid)) return;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.dataset.slot = mid;
    audio.hidden = true;
    audio.srcObject = new MediaStream([track]);
    this.root.append(audio);
    this.players.set(mid, audio);
    audio.play().catch((err: unknown) => {
      if (err instanceof DOMException && err.name === 'NotAllowedError') this.onAutoplayBlocked();
    });
  }

  /** Marks the tile of the participant who speaks now (and no other). */
  setSpeaking(id: number): void {
    for (const [tileId, tile] of this.tiles) tile.root.classList.toggle('speaking', tileId === id);
  }

  remove(id: number): void {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.root.remove();
    this.tiles.delete(id);
    this.onLayoutChange();
  }

  clear(): void {
    for (const id of [...this.tiles.keys()]) this.remove(id);
    for (const audio of this.players.values()) {
      audio.srcObject = null;
      audio.remove();
    }
    this.players.clear();
  }

  /** Starts the audio players after a user gesture (when autoplay with sound was refused). */
  resumeAudio(): void {
    for (const audio of this.players.values()) audio.play().catch(() => {});
  }

  /** Re-renders the texts after a language switch. */
  relabel(): void {
    for (const [id, tile] of this.tiles) this.label(id, tile);
  }

  private create(id: number, name: string | null, self: boolean): Tile {
    const root = document.createElement('figure');
    root.className = self ? 'tile self' : 'tile';
    root.dataset.participantId = String(id);

    const video = document.createElement('video');
    // Sound comes from the audio slots' players, never from a tile.
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.addEventListener('loadeddata', () => root.classList.add('has-video'));

    const placeholder = document.createElement('div');
    placeholder.className = 'tile-placeholder';
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    const waiting = document.createElement('span');
    waiting.className = 'waiting';
    placeholder.append(avatar, waiting);

    const caption = document.createElement('figcaption');
    caption.className = 'tile-name';

    root.append(video, placeholder, caption);
    const tile: Tile = { root, video, caption, avatar, waiting, name, self };
    this.label(id, tile);
    // Keep the local preview first.
    if (self) this.root.prepend(root);
    else this.root.append(root);
    this.tiles.set(id, tile);
    this.onLayoutChange();
    return tile;
  }

  private label(id: number, tile: Tile): void {
    const shown = tile.name ?? t('unknownName', { id });
    tile.caption.textContent = tile.self ? t('youWithName', { name: shown }) : shown;
    tile.avatar.textContent = [...shown.trim()][0]?.toUpperCase() ?? '?';
    tile.waiting.textContent = tile.self ? '' : t('waitingMedia');
  }

  private attach(tile: Tile, stream: MediaStream): void {
    if (tile.video.srcObject === stream) return;
    tile.video.srcObject = stream;
    tile.video.play().catch(() => {});
  }
}
