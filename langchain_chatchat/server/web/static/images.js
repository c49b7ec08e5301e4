// Images a page may attach to a chat message, shared by the home page and the LangServe
// playground: which files, how large, read into a data: URL. The server checks every image
// again against its model's provider limits (format, bytes, pixels) and answers 400 or 413.
"use strict";

window.chatchatImages = (() => {
  const TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
  const MIB = 1024 * 1024;
  const MAX_BYTES = 20 * MIB; // the most any provider here takes (workers/content.py MediaRules)
  const BODY_HEADROOM = 64 * 1024; // what a request body needs besides the image

  // The largest image whose data: URL still fits a request body of `maxBody` bytes (the
  // server's `max_body_size`; unknown: MAX_BYTES). Base64 turns 3 bytes into 4.
  function limit(maxBody) {
    if (!(maxBody > 0)) return MAX_BYTES;
    return Math.max(0, Math.min(MAX_BYTES, Math.floor(((maxBody - BODY_HEADROOM) * 3) / 4)));
  }

  function size(bytes) {
    if (bytes >= MIB) return `${(bytes / MIB).toFixed(1)} MiB`;
    if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
    return `${bytes} bytes`;
  }

  // `file` as a data: URL; rejects with a message for the user when it cannot be sent.
  function read(file, maxBytes = MAX_BYTES) {
    if (!TYPES.includes(file.type)) {
      return Promise.reject(new Error(`${file.name} is not a PNG, JPEG, WebP or GIF image.`));
    }
    if (file.size > maxBytes) {
      return Promise.reject(
        new Error(`${file.name} is ${size(file.size)}; images up to ${size(maxBytes)} can be sent.`),
      );
    }
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  return { ACCEPT: TYPES.join(","), limit, read, size };
})();
