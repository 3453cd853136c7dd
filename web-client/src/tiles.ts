// The video tiles: the stage (the presentation, the chair, the site speaking, large) and the
// gallery (the others that fit, and this page's own preview, small); tiles not planned are
// hidden, so the SFU is not asked for them. Also the hidden players of the audio slots (the
// SFU decides whose voices they carry).

import { t } from './i18n';
import type { Stage } from './meeting-state';

interface Tile {
  root: HTMLElement;
  video: HTMLVideoElement;
  caption: HTMLElement;
  badges: HTMLElement;
  avatar: HTMLElement;
  waiting: HTMLElement;
  /** The name as the server gave it; null while unknown. */
  name: string | null;
  self: boolean;
}

/** Marks shown on a tile. */
export interface Badges {
  chair: boolean;
  floor: boolean;
  muted: boolean;
  spotlight: boolean;
}

export class TileGrid {
  private readonly tiles = new Map<number, Tile>();
  private readonly players = new Map<string, HTMLAudioElement>();
  private content: { root: HTMLElement; video: HTMLVideoElement; caption: HTMLElement; owner: number } | null =
    null;

  /** Called when tiles come, go or change size: the view sent to the SFU must follow. */
  onLayoutChange: () => void = () => {};

  private readonly resizes = new ResizeObserver(() => this.onLayoutChange());

  /** Called when the browser refuses to play a remote video with sound. */
  onAutoplayBlocked: () => void = () => {};

  constructor(
    private readonly stage: HTMLElement,
    private readonly gallery: HTMLElement,
  ) {
    this.resizes.observe(stage);
    this.resizes.observe(gallery);
  }

  /** The remote camera tiles as shown: whose, and how many device pixels high (hidden: 0). */
  heights(): Map<number, number> {
    const ratio = window.devicePixelRatio || 1;
    const out = new Map<number, number>();
    for (const [id, tile] of this.tiles) {
      if (!tile.self) out.set(id, tile.root.hidden ? 0 : tile.root.clientHeight * ratio);
    }
    return out;
  }

  /** The gallery's width in CSS pixels (how many tiles fit). */
  galleryWidth(): number {
    return this.gallery.clientWidth;
  }

  /** Puts each tile where the plan says: on the stage, in the gallery, or hidden. */
  arrange(plan: Stage): void {
    const onStage = new Set(plan.main);
    const inGallery = new Set(plan.gallery);
    for (const id of plan.main) {
      const tile = this.tiles.get(id);
      if (tile) this.stage.append(tile.root);
    }
    if (this.content) this.stage.prepend(this.content.root);
    for (const [id, tile] of this.tiles) {
      tile.root.classList.toggle('main', onStage.has(id));
      if (tile.self) continue;
      if (!onStage.has(id)) this.gallery.append(tile.root);
      tile.root.hidden = !onStage.has(id) && !inGallery.has(id);
    }
    // Gallery order as planned, this page's own preview first.
    for (const id of plan.gallery) {
      const tile = this.tiles.get(id);
      if (tile) this.gallery.append(tile.root);
    }
    for (const tile of this.tiles.values()) {
      if (tile.self) this.gallery.prepend(tile.root);
    }
    this.stage.classList.toggle('with-content', this.content !== null);
    this.stage.dataset.count = String(plan.main.length + (this.content ? 1 : 0));
  }

  addSelf(id: number, name: string, stream: MediaStream): void {
    const tile = this.create(id, name, true);
    this.attach(tile.video, stream);
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
    this.attach(tile.video, new MediaStream([track]));
  }

  /** Shows this page's own camera again (another device), or its placeholder (camera off). */
  setSelfVideo(stream: MediaStream | null): void {
    for (const tile of this.tiles.values()) {
      if (!tile.self) continue;
      if (stream === null) {
        tile.video.srcObject = null;
        tile.root.classList.remove('has-video');
      } else {
        this.attach(tile.video, stream);
      }
    }
  }

  /** The presentation of participant `owner` (null: none). */
  setContent(owner: number | null, track: MediaStreamTrack | null): void {
    if (owner === null || track === null) {
      if (this.content) {
        this.content.video.srcObject = null;
        this.content.root.remove();
        this.content = null;
        this.onLayoutChange();
      }
      return;
    }
    if (!this.content) {
      const root = document.createElement('figure');
      root.className = 'tile content';
      root.dataset.content = 'true';
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      video.addEventListener('loadeddata', () => root.classList.add('has-video'));
      const caption = document.createElement('figcaption');
      caption.className = 'tile-name';
      root.append(video, caption);
      this.content = { root, video, caption, owner };
      this.stage.prepend(root);
    }
    this.content.owner = owner;
    this.labelContent();
    this.attach(this.content.video, new MediaStream([track]));
    this.onLayoutChange();
  }

  /** Marks a participant's tile: chair, floor holder, muted, spotlight. */
  setBadges(id: number, badges: Badges): void {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const marks: [keyof Badges, string][] = [
      ['chair', t('badgeChair')],
      ['floor', t('badgeFloor')],
      ['spotlight', t('badgeSpotlight')],
      ['muted', t('badgeMuted')],
    ];
    tile.badges.replaceChildren(
      ...marks
        .filter(([key]) => badges[key])
        .map(([key, text]) => {
          const span = document.createElement('span');
          span.className = `badge badge-${key}`;
          span.textContent = text;
          return span;
        }),
    );
    tile.root.classList.toggle('floor', badges.floor);
  }

  /** Plays an audio slot. */
  addAudio(mid: string, track: MediaStreamTrack): void {
    if (this.players.has(mid)) return;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.dataset.slot = mid;
    audio.hidden = true;
    audio.srcObject = new MediaStream([track]);
    this.gallery.append(audio);
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
    this.setContent(null, null);
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
    this.labelContent();
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
    const badges = document.createElement('span');
    badges.className = 'badges';

    root.append(video, placeholder, caption, badges);
    const tile: Tile = { root, video, caption, badges, avatar, waiting, name, self };
    this.label(id, tile);
    if (self) this.gallery.prepend(root);
    else this.gallery.append(root);
    this.tiles.set(id, tile);
    this.onLayoutChange();
    return tile;
  }

  private label(id: number, tile: Tile): void {
    const shown = tile.name ?? t('unknownName', { id });
    tile.caption.textContent = tile.self ? t('youWithName', { name: shown }) : shown;
    tile.root.setAttribute('aria-label', tile.caption.textContent);
    tile.avatar.textContent = [...shown.trim()][0]?.toUpperCase() ?? '?';
    tile.waiting.textContent = tile.self ? '' : t('waitingMedia');
  }

  private labelContent(): void {
    if (!this.content) return;
    const owner = this.tiles.get(this.content.owner)?.name ?? t('unknownName', { id: this.content.owner });
    this.content.caption.textContent = t('contentOf', { name: owner });
    this.content.root.setAttribute('aria-label', this.content.caption.textContent);
  }

  private attach(video: HTMLVideoElement, stream: MediaStream): void {
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    video.play().catch(() => {});
  }
}
