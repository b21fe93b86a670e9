/* axline dashboard text in Korean and English. Every visible string goes through AxI18n.t(). */
(function () {
  'use strict';

  const STORAGE_KEY = 'axline.lang';

  const en = {
    'insp.title': 'axline — inspection review',
    'insp.heading': 'Inspection review',
    'insp.back': 'Line dashboard',
    'insp.help': 'Confirm or overrule each verdict. Overruled false rejects are added to the model of good parts; confirmed defects refine the threshold. No retraining is needed.',
    'insp.stats': 'Feedback results',
    'insp.camera': 'Camera',
    'insp.inspected': 'Inspected',
    'insp.rejects': 'Rejected',
    'insp.latency': 'Image to PLC signal (p50 / p99)',
    'insp.frr': 'False-reject rate',
    'insp.escape': 'Escape rate',
    'insp.before': 'parts inspected before any model update',
    'insp.after': 'parts inspected after an update',
    'insp.reviewed': 'Reviewed parts: {good} good, {defect} defective',
    'insp.none': 'No verdicts yet',
    'insp.score': 'score {score} / threshold {threshold}',
    'insp.verdict.pass': 'Pass',
    'insp.verdict.reject': 'Reject',
    'insp.confirm': 'Correct',
    'insp.overrule': 'Wrong',
    'insp.link': 'Inspection review',
    'app.title': 'axline — line dashboard',
    'app.brand': 'axline',
    'header.line': 'Line',
    'header.clock_title': 'Plant time',
    'header.logout': 'Log out',
    'lang.toggle': '한국어',
    'lang.toggle_title': 'Switch the language to Korean',
    'stream.connecting': 'Connecting…',
    'stream.live': 'Live',
    'stream.reconnecting': 'Reconnecting…',
    'stream.offline': 'Offline',
    'stream.title': 'Connection to the live data stream',
    'section.line': 'Line flow',
    'section.kpi': 'Performance',
    'section.trends': 'Live trends',
    'section.events': 'Events',
    'line.state': 'Line: {state}',
    'station.alarms': '{n} alarm(s)',
    'station.click': 'Click to show this station\'s trends',
    'state.running': 'Running',
    'state.idle': 'Idle',
    'state.microstop': 'Micro-stop',
    'state.changeover': 'Changeover',
    'state.down': 'Down',
    'state.stopped': 'Stopped',
    'state.alarm': 'Alarm',
    'state.offline': 'Offline',
    'state.unknown': 'No status',
    'kpi.oee': 'OEE',
    'kpi.apq': 'A {a} × P {p} × Q {q}',
    'kpi.apq_title': 'Availability × Performance × Quality',
    'kpi.cycle': 'Cycle time',
    'kpi.takt': 'takt {takt}',
    'kpi.over_takt': 'over takt',
    'kpi.within_takt': 'within takt',
    'kpi.fpy': 'First-pass yield',
    'kpi.fpy_sub': 'good the first time',
    'kpi.energy': 'Energy per good part',
    'kpi.parts': 'Parts',
    'kpi.parts_sub': 'good {good} · rejected {rejected}',
    'kpi.shift': 'Shift',
    'kpi.shift_since': 'since {time}',
    'trends.all': 'All stations',
    'trends.filter': 'Only {name} — show all',
    'trends.none': 'No trend tags on this line',
    'trends.hint': 'Click a station to filter',
    'trends.ago': '−10 min',
    'trends.now': 'now',
    'events.none': 'No events yet',
    'events.confirm': 'Confirm',
    'events.overrule': 'Overrule',
    'events.confirm_title': 'The verdict is right',
    'events.overrule_title': 'The verdict is wrong',
    'events.ack.confirmed': 'Confirmed',
    'events.ack.overruled': 'Overruled',
    'events.ack.acknowledged': 'Acknowledged',
    'events.ongoing': 'ongoing',
    'events.contributions': 'Contributing signals',
    'events.heatmap': 'Defect heat map',
    'events.feedback_failed': 'Could not send feedback: {error}',
    'kind.alarm': 'Alarm',
    'kind.defect': 'Defect',
    'kind.inspection': 'Inspection',
    'kind.fault': 'Fault',
    'kind.state': 'State',
    'kind.write': 'Write',
    'kind.info': 'Info',
    'severity.info': 'info',
    'severity.warning': 'warning',
    'severity.alarm': 'alarm',
    'quality.1': 'Uncertain value',
    'quality.2': 'Bad value',
    'quality.3': 'Out of range',
    'quality.4': 'No connection',
    'quality.5': 'Sensor fault',
    'quality.6': 'Configuration error',
    'quality.nan': 'No value',
    'error.load': 'Could not load {what}: {error}',
    'error.what.plant': 'the plant',
    'error.what.data': 'live data',
    'login.title': 'Sign in',
    'login.subtitle': 'axline line dashboard',
    'login.username': 'User name',
    'login.password': 'Password',
    'login.locked': 'Too many failed logins: this account is locked for a few minutes. An admin can unlock it.',
    'login.submit': 'Sign in',
    'login.error': 'Wrong user name or password. Please try again.',
    'login.hint': 'Ask an axline admin for an account.',
    // Event texts by event code; {placeholders} come from event.data (plus asset / signal names).
    'event.anomaly.sensor': 'Unusual pattern on {asset}, mostly {top} (score {score})',
    'event.sensor.bad_quality': '{asset}: {signal} reports bad quality or no value',
    'event.sensor.stuck': '{asset}: {signal} is frozen',
    'event.camera.bad_image': 'Camera {camera}: the image could not be read',
    'event.anomaly.cleared': '{asset} is back to normal',
    'event.anomaly.rul': '{asset}: about {hours} h of useful life left',
    'event.rul.low': '{asset}: about {hours} h of useful life left',
    'event.inspection.defect': 'Defect found on part {part} (score {score})',
    'event.inspection.pass': 'Inspection passed (score {score})',
    'event.inspection.reject': 'Defect found (score {score})',
    'event.limit.high': '{signal} above its limit on {asset}: {value}',
    'event.limit.low': '{signal} below its limit on {asset}: {value}',
    'event.state.change': '{asset}: {from} → {to}',
    'event.fault.injected': 'Simulated fault started on {asset}: {fault}',
    'event.fault.cleared': 'Simulated fault ended on {asset}: {fault}',
    'event.connect.lost': 'Connection lost: {connector}',
    'event.connect.restored': 'Connection restored: {connector}',
    'event.write.setpoint': '{signal} on {asset} set to {value}',
    'event.knowledge.match': 'A similar past case may help: {title}',
  };

  const ko = {
    'insp.title': 'axline — 검사 결과 검토',
    'insp.heading': '검사 결과 검토',
    'insp.back': '라인 대시보드',
    'insp.help': '판정마다 맞음/틀림을 눌러 주세요. 틀린 불량 판정(과검출)은 양품 모델에 추가되고, 확인된 불량은 판정 기준을 다듬습니다. 재학습은 필요 없습니다.',
    'insp.stats': '피드백 결과',
    'insp.camera': '카메라',
    'insp.inspected': '검사 수',
    'insp.rejects': '불량 판정',
    'insp.latency': '이미지→PLC 신호 (p50 / p99)',
    'insp.frr': '과검출률',
    'insp.escape': '미검출률',
    'insp.before': '모델 갱신 전에 검사한 부품',
    'insp.after': '모델 갱신 후에 검사한 부품',
    'insp.reviewed': '검토한 부품: 양품 {good}개, 불량 {defect}개',
    'insp.none': '아직 판정이 없습니다',
    'insp.score': '점수 {score} / 기준 {threshold}',
    'insp.verdict.pass': '합격',
    'insp.verdict.reject': '불량',
    'insp.confirm': '맞음',
    'insp.overrule': '틀림',
    'insp.link': '검사 결과 검토',
    'app.title': 'axline — 라인 대시보드',
    'app.brand': 'axline',
    'header.line': '라인',
    'header.clock_title': '공장 시각',
    'header.logout': '로그아웃',
    'lang.toggle': 'English',
    'lang.toggle_title': '언어를 영어로 바꿉니다',
    'stream.connecting': '연결 중…',
    'stream.live': '실시간',
    'stream.reconnecting': '재연결 중…',
    'stream.offline': '연결 끊김',
    'stream.title': '실시간 데이터 연결 상태',
    'section.line': '라인 흐름',
    'section.kpi': '생산 지표',
    'section.trends': '실시간 트렌드',
    'section.events': '이벤트',
    'line.state': '라인: {state}',
    'station.alarms': '알람 {n}건',
    'station.click': '클릭하면 이 설비의 트렌드만 봅니다',
    'state.running': '가동',
    'state.idle': '대기',
    'state.microstop': '순간 정지',
    'state.changeover': '품종 교체',
    'state.down': '고장 정지',
    'state.stopped': '정지',
    'state.alarm': '알람',
    'state.offline': '오프라인',
    'state.unknown': '상태 없음',
    'kpi.oee': 'OEE 설비종합효율',
    'kpi.apq': '가동 {a} × 성능 {p} × 품질 {q}',
    'kpi.apq_title': '시간 가동률 × 성능 가동률 × 양품률',
    'kpi.cycle': '사이클 타임',
    'kpi.takt': '택트 {takt}',
    'kpi.over_takt': '택트 초과',
    'kpi.within_takt': '택트 이내',
    'kpi.fpy': '직행률',
    'kpi.fpy_sub': '재작업 없이 양품',
    'kpi.energy': '양품당 에너지',
    'kpi.parts': '생산 수량',
    'kpi.parts_sub': '양품 {good} · 불량 {rejected}',
    'kpi.shift': '근무조',
    'kpi.shift_since': '{time}부터',
    'trends.all': '전체 설비',
    'trends.filter': '{name}만 표시 — 전체 보기',
    'trends.none': '이 라인에는 트렌드 태그가 없습니다',
    'trends.hint': '설비를 클릭하면 걸러 봅니다',
    'trends.ago': '−10분',
    'trends.now': '현재',
    'events.none': '아직 이벤트가 없습니다',
    'events.confirm': '맞음',
    'events.overrule': '틀림',
    'events.confirm_title': '판정이 맞습니다',
    'events.overrule_title': '판정이 틀렸습니다',
    'events.ack.confirmed': '확인됨',
    'events.ack.overruled': '기각됨',
    'events.ack.acknowledged': '확인함',
    'events.ongoing': '진행 중',
    'events.contributions': '원인 신호 기여도',
    'events.heatmap': '불량 위치 히트맵',
    'events.feedback_failed': '피드백을 보내지 못했습니다: {error}',
    'kind.alarm': '알람',
    'kind.defect': '불량',
    'kind.inspection': '검사',
    'kind.fault': '고장',
    'kind.state': '상태',
    'kind.write': '쓰기',
    'kind.info': '정보',
    'severity.info': '정보',
    'severity.warning': '경고',
    'severity.alarm': '알람',
    'quality.1': '불확실한 값',
    'quality.2': '잘못된 값',
    'quality.3': '범위 초과',
    'quality.4': '연결 없음',
    'quality.5': '센서 이상',
    'quality.6': '설정 오류',
    'quality.nan': '값 없음',
    'error.load': '{what}을(를) 불러오지 못했습니다: {error}',
    'error.what.plant': '공장 정보',
    'error.what.data': '실시간 데이터',
    'login.title': '로그인',
    'login.subtitle': 'axline 라인 대시보드',
    'login.username': '사용자 이름',
    'login.password': '비밀번호',
    'login.locked': '로그인 실패가 너무 많아 이 계정이 몇 분간 잠겼습니다. 관리자가 잠금을 풀 수 있습니다.',
    'login.submit': '로그인',
    'login.error': '사용자 이름 또는 비밀번호가 틀렸습니다. 다시 입력하세요.',
    'login.hint': '계정은 axline 관리자에게 요청하세요.',
    'event.anomaly.sensor': '{asset} 이상 패턴 — 주요 신호 {top} (점수 {score})',
    'event.sensor.bad_quality': '{asset}: {signal} 신호 품질 불량 또는 값 없음',
    'event.sensor.stuck': '{asset}: {signal} 값이 멈춤',
    'event.camera.bad_image': '카메라 {camera}: 이미지를 읽을 수 없음',
    'event.anomaly.cleared': '{asset} 정상으로 돌아옴',
    'event.anomaly.rul': '{asset}: 잔여 수명 약 {hours}시간',
    'event.rul.low': '{asset}: 잔여 수명 약 {hours}시간',
    'event.inspection.defect': '부품 {part} 불량 검출 (점수 {score})',
    'event.inspection.pass': '검사 합격 (점수 {score})',
    'event.inspection.reject': '불량 검출 (점수 {score})',
    'event.limit.high': '{asset} {signal} 상한 초과: {value}',
    'event.limit.low': '{asset} {signal} 하한 미달: {value}',
    'event.state.change': '{asset}: {from} → {to}',
    'event.fault.injected': '{asset} 모의 고장 시작: {fault}',
    'event.fault.cleared': '{asset} 모의 고장 종료: {fault}',
    'event.connect.lost': '연결 끊김: {connector}',
    'event.connect.restored': '연결 복구: {connector}',
    'event.write.setpoint': '{asset} {signal} 설정값 변경: {value}',
    'event.knowledge.match': '비슷한 과거 사례가 있습니다: {title}',
  };

  const TABLES = { en: en, ko: ko };
  const listeners = [];

  function initialLang() {
    let saved = null;
    try { saved = window.localStorage.getItem(STORAGE_KEY); } catch (e) { saved = null; }
    if (saved === 'ko' || saved === 'en') return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
    return nav.toLowerCase().startsWith('ko') ? 'ko' : 'en';
  }

  let lang = initialLang();

  /** Text for key in the current language; {name} placeholders filled from vars. */
  function t(key, vars) {
    const table = TABLES[lang];
    let text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : en[key];
    if (text === undefined) return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(TABLES[lang], key); }

  /** A {en: ..., ko: ...} name in the current language (falls back to English, then any). */
  function pick(names, fallback) {
    if (names == null) return fallback || '';
    if (typeof names === 'string') return names;
    return names[lang] || names.en || Object.values(names)[0] || fallback || '';
  }

  function apply(root) {
    const scope = root || document;
    scope.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    scope.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    scope.querySelectorAll('[data-i18n-aria-label]').forEach((el) => {
      el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
    });
    document.documentElement.lang = lang;
  }

  function setLang(next) {
    if (next !== 'ko' && next !== 'en') throw new Error('language must be "ko" or "en", got ' + next);
    lang = next;
    try { window.localStorage.setItem(STORAGE_KEY, next); } catch (e) { /* private mode: not remembered */ }
    apply();
    listeners.forEach((fn) => fn(lang));
  }

  function locale() { return lang === 'ko' ? 'ko-KR' : 'en-GB'; }

  // a page's own catalog file adds its keys: AxI18n.extend({ en: {...}, ko: {...} })
  function extend(tables) {
    Object.keys(tables).forEach((l) => { if (TABLES[l]) Object.assign(TABLES[l], tables[l]); });
  }

  window.AxI18n = {
    extend: extend,
    t: t,
    has: has,
    pick: pick,
    apply: apply,
    setLang: setLang,
    getLang: () => lang,
    locale: locale,
    toggle: () => setLang(lang === 'ko' ? 'en' : 'ko'),
    onChange: (fn) => listeners.push(fn),
    tables: TABLES,
  };
})();
