// Every string the user sees. Vietnamese first; English mirrors the same keys.

const vi = {
  appTitle: 'Phòng họp trực tuyến',
  joinHeading: 'Tham gia cuộc họp',
  nameLabel: 'Tên hiển thị',
  namePlaceholder: 'Ví dụ: Nguyễn Văn An',
  meetingLabel: 'Cuộc họp',
  joinButton: 'Vào phòng họp',
  leaveButton: 'Rời cuộc họp',
  you: 'Bạn',
  youWithName: 'Bạn ({name})',
  unknownName: 'Người tham gia {id}',
  waitingMedia: 'Đang chờ hình ảnh…',
  languageSwitch: 'English',
  loadingMeetings: 'Đang tải danh sách cuộc họp…',
  noMeetings: 'Chưa có cuộc họp nào.',
  meetingsFailed: 'Không tải được danh sách cuộc họp ({detail}).',
  nameRequired: 'Vui lòng nhập tên hiển thị.',
  nameTooLong: 'Tên hiển thị dài quá 64 ký tự.',
  meetingRequired: 'Vui lòng chọn một cuộc họp.',
  askingMedia: 'Đang mở camera và micrô…',
  mediaDenied: 'Trình duyệt không được phép dùng camera và micrô. Hãy cho phép trong cài đặt trang rồi thử lại.',
  mediaNotFound: 'Không tìm thấy camera hoặc micrô trên máy này.',
  mediaBusy: 'Camera hoặc micrô đang được ứng dụng khác sử dụng.',
  mediaInsecure: 'Trình duyệt chỉ cho dùng camera và micrô trên trang HTTPS.',
  mediaFailed: 'Không mở được camera và micrô ({detail}).',
  connecting: 'Đang kết nối tới máy chủ…',
  connectingMedia: 'Đang kết nối âm thanh và hình ảnh…',
  connected: 'Đã kết nối.',
  mediaConnectionFailed: 'Mất kết nối âm thanh và hình ảnh. Hãy rời cuộc họp và vào lại.',
  disconnected: 'Mất kết nối với máy chủ.',
  reconnecting: 'Mất kết nối với máy chủ, đang kết nối lại sau {seconds} giây…',
  replaced: 'Một thiết bị khác của điểm cầu này đã vào cuộc họp thay máy này.',
  serverError: 'Máy chủ báo lỗi: {message}',
  signalingFailed: 'Lỗi thương lượng kết nối: {detail}',
  leftMeeting: 'Bạn đã rời cuộc họp.',
  clickForSound: 'Nhấn vào video để bật âm thanh.',
  dashTitle: 'Bảng theo dõi kỹ thuật',
  dashLogin: 'Đăng nhập',
  dashUsername: 'Tên đăng nhập',
  dashPassword: 'Mật khẩu',
  dashLoginFailed: 'Đăng nhập không thành công ({detail}).',
  dashWatch: 'Theo dõi',
  dashSort: 'Sắp xếp',
  dashSortWorst: 'Kém nhất trước',
  dashSortName: 'Theo tên',
  dashAlerts: 'Cảnh báo',
  dashNoAlerts: 'Không có cảnh báo.',
  dashSites: 'Các điểm cầu',
  dashStateAlert: 'có cảnh báo',
  dashStatePoor: 'kém',
  dashStateOffline: 'mất kết nối',
  dashStateFair: 'trung bình',
  dashStateWaiting: 'chưa vào họp',
  dashStateGood: 'tốt',
  dashCell: '{name}: {state}',
  dashLoss: 'Mất gói {value} %',
  dashRtt: 'Trễ {value} ms',
  dashFps: '{value} hình/giây',
  dashKbps: '{value} kb/s',
  dashAlertOffline: '{site} không có mặt trong cuộc họp đã bắt đầu',
  dashAlertLoss: '{site} mất gói trên 5 %',
  dashAlertNoVideo: '{site} mất hình',
  dashAlertCpu: 'Thiết bị của {site} quá tải CPU',
  dashSince: 'từ {time}',
  dashDetail: 'Chi tiết: {site}',
  dashChartLoss: 'Tỷ lệ mất gói (5 phút)',
  dashChartRtt: 'Độ trễ khứ hồi (ms)',
  dashChartKbps: 'Tốc độ nhận (kb/s)',
  dashChartFps: 'Số hình/giây',
  dashCommands: 'Điều khiển thiết bị',
  dashPreset: 'Vị trí camera',
  dashRecall: 'Chuyển camera',
  dashMute: 'Tắt micrô',
  dashUnmute: 'Bật micrô',
  dashRestart: 'Khởi động lại',
  dashMaxBitrate: 'Tốc độ tối đa (kb/s)',
  dashSetBitrate: 'Đặt',
  dashCommandSent: 'Đã gửi lệnh tới {site}.',
  dashCommandFailed: 'Không gửi được lệnh ({detail}).',
  dashConnected: 'Đang theo dõi trực tiếp.',
};

export type MessageKey = keyof typeof vi;

const en: Record<MessageKey, string> = {
  appTitle: 'Online meeting room',
  joinHeading: 'Join a meeting',
  nameLabel: 'Display name',
  namePlaceholder: 'For example: Alex Nguyen',
  meetingLabel: 'Meeting',
  joinButton: 'Join meeting',
  leaveButton: 'Leave meeting',
  you: 'You',
  youWithName: 'You ({name})',
  unknownName: 'Participant {id}',
  waitingMedia: 'Waiting for video…',
  languageSwitch: 'Tiếng Việt',
  loadingMeetings: 'Loading meetings…',
  noMeetings: 'There are no meetings yet.',
  meetingsFailed: 'Could not load the meetings ({detail}).',
  nameRequired: 'Please enter a display name.',
  nameTooLong: 'The display name is longer than 64 characters.',
  meetingRequired: 'Please choose a meeting.',
  askingMedia: 'Opening camera and microphone…',
  mediaDenied: 'The browser may not use the camera and microphone. Allow them in the site settings and try again.',
  mediaNotFound: 'No camera or microphone was found on this device.',
  mediaBusy: 'The camera or microphone is in use by another application.',
  mediaInsecure: 'The browser only allows camera and microphone on HTTPS pages.',
  mediaFailed: 'Could not open the camera and microphone ({detail}).',
  connecting: 'Connecting to the server…',
  connectingMedia: 'Connecting audio and video…',
  connected: 'Connected.',
  mediaConnectionFailed: 'Audio and video were lost. Leave the meeting and join again.',
  disconnected: 'Lost the connection to the server.',
  reconnecting: 'Lost the connection to the server; reconnecting in {seconds} s…',
  replaced: 'Another device of this site has taken this one\'s place in the meeting.',
  serverError: 'The server reported an error: {message}',
  signalingFailed: 'Connection negotiation failed: {detail}',
  leftMeeting: 'You left the meeting.',
  clickForSound: 'Click a video to turn on sound.',
  dashTitle: 'Technicians\' dashboard',
  dashLogin: 'Log in',
  dashUsername: 'Username',
  dashPassword: 'Password',
  dashLoginFailed: 'Logging in failed ({detail}).',
  dashWatch: 'Watch',
  dashSort: 'Sort',
  dashSortWorst: 'Worst first',
  dashSortName: 'By name',
  dashAlerts: 'Alerts',
  dashNoAlerts: 'No alerts.',
  dashSites: 'Sites',
  dashStateAlert: 'alert',
  dashStatePoor: 'poor',
  dashStateOffline: 'offline',
  dashStateFair: 'fair',
  dashStateWaiting: 'not in the meeting',
  dashStateGood: 'good',
  dashCell: '{name}: {state}',
  dashLoss: 'Loss {value} %',
  dashRtt: 'RTT {value} ms',
  dashFps: '{value} fps',
  dashKbps: '{value} kb/s',
  dashAlertOffline: '{site} is not in the meeting that has started',
  dashAlertLoss: '{site} loses over 5 % of its packets',
  dashAlertNoVideo: '{site}: no video',
  dashAlertCpu: '{site}: terminal CPU overloaded',
  dashSince: 'since {time}',
  dashDetail: 'Detail: {site}',
  dashChartLoss: 'Packet loss (5 minutes)',
  dashChartRtt: 'Round-trip time (ms)',
  dashChartKbps: 'Receive rate (kb/s)',
  dashChartFps: 'Frames per second',
  dashCommands: 'Terminal control',
  dashPreset: 'Camera preset',
  dashRecall: 'Recall',
  dashMute: 'Mute microphone',
  dashUnmute: 'Unmute microphone',
  dashRestart: 'Restart',
  dashMaxBitrate: 'Maximum rate (kb/s)',
  dashSetBitrate: 'Set',
  dashCommandSent: 'Command sent to {site}.',
  dashCommandFailed: 'The command failed ({detail}).',
  dashConnected: 'Watching live.',
};

export const messages = { vi, en } as const;
export type Lang = keyof typeof messages;

const STORAGE_KEY = 'bridge.lang';

function initialLang(): Lang {
  const fromUrl = new URLSearchParams(location.search).get('lang');
  if (fromUrl === 'vi' || fromUrl === 'en') return fromUrl;
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'vi' || saved === 'en') return saved;
  } catch {
    // Storage may be disabled; Vietnamese stays the default.
  }
  return 'vi';
}

let lang: Lang = initialLang();

export function currentLang(): Lang {
  return lang;
}

export function setLang(next: Lang): void {
  lang = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not remembered; fine.
  }
}

/** The text for `key` in the current language, with `{var}` placeholders filled in. */
export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  return messages[lang][key].replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in vars ? String(vars[name]) : whole,
  );
}
