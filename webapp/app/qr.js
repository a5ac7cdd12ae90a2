// Reading an invite code's QR with the phone's camera. The browser's own
// BarcodeDetector is used where it has one (Chrome on Android, Safari);
// elsewhere jsQR (pinned in package.json, bundled: no request leaves this
// origin). Frames never leave the page.
import jsQR from 'jsqr';

let detector; // undefined: not tried yet; null: the browser has none that reads QR

// decodeQR returns the text of the QR code in source (a video element or
// an image), or null when it finds none.
export async function decodeQR(source, width, height) {
  if (detector === undefined) {
    detector = null;
    try {
      if (globalThis.BarcodeDetector && (await BarcodeDetector.getSupportedFormats()).includes('qr_code')) {
        detector = new BarcodeDetector({ formats: ['qr_code'] });
      }
    } catch { /* no detector: jsQR below */ }
  }
  if (detector) {
    const found = await detector.detect(source);
    return found.length ? found[0].rawValue : null;
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  const img = ctx.getImageData(0, 0, width, height);
  return jsQR(img.data, width, height)?.data ?? null;
}

// scanCamera shows the back camera in video and looks for a QR code a
// few times a second. done resolves with its text, or null once stop()
// is called; the camera is released either way.
export function scanCamera(video) {
  let stopped = false;
  let stream;
  const done = (async () => {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    video.srcObject = stream;
    await video.play();
    while (!stopped) {
      if (video.videoWidth) {
        const text = await decodeQR(video, video.videoWidth, video.videoHeight);
        if (text !== null) return text;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return null;
  })().finally(() => {
    stream?.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  });
  return { done, stop: () => { stopped = true; } };
}
