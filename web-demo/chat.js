// The meeting's chat panel, on tern's data channels (topic `chat`): to everyone or to one
// participant, with the sender as tern stamped it. Used by app.js.

const TOPIC = 'chat';

export class Chat {
  constructor(client, $, { onUnread }) {
    Object.assign(this, { client, $, onUnread });
    this.messages = []; // {from, identity, name, text, private, mine}
    client.addEventListener('data', (e) => {
      const m = e.detail;
      if (m.topic !== TOPIC || typeof m.payload !== 'string') return;
      const name = m.participant?.name ?? (m.from ? m.identity : 'server');
      this.add({ from: m.from, identity: m.identity, name, text: m.payload, private: m.to.length > 0, mine: false });
      onUnread();
    });
    client.addEventListener('data-error', (e) => this.system(`Not sent (${e.detail.code}): ${e.detail.message}`));
    client.addEventListener('participant-joined', () => this.recipients());
    client.addEventListener('participant-left', () => this.recipients());
    client.addEventListener('joined', () => this.recipients());
    $('chat-form').onsubmit = (e) => {
      e.preventDefault();
      this.send($('chat-input').value, $('chat-to').value || null).catch((err) => this.system(`Not sent: ${err.message}`));
      $('chat-input').value = '';
    };
  }

  /** Sends `text` to everyone, or to participant `to` only. */
  async send(text, to = null) {
    if (!text.trim()) return;
    await this.client.sendData(text, { topic: TOPIC, to: to ? [to] : undefined });
    const toName = to ? this.client.participants.get(to)?.name ?? to : null;
    this.add({ from: this.client.self?.id, identity: this.client.self?.identity, name: toName ? `You to ${toName}` : 'You', text, private: !!to, mine: true });
  }

  add(m) {
    this.messages.push(m);
    const li = document.createElement('li');
    li.classList.toggle('mine', m.mine);
    li.classList.toggle('private', m.private);
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = `${m.name}${m.private && !m.mine ? ' (to you)' : ''} ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
    li.append(from, document.createTextNode(m.text));
    this.$('chat-log').append(li);
    li.scrollIntoView({ block: 'end' });
  }

  system(text) {
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = text;
    this.$('chat-log').append(li);
  }

  // The "to" list: everyone, or one of the others.
  recipients() {
    const select = this.$('chat-to');
    const keep = select.value;
    const options = [['', 'Everyone'], ...[...this.client.participants.values()].map((p) => [p.id, p.name])];
    select.replaceChildren(...options.map(([value, label]) => {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = label;
      return o;
    }));
    select.value = options.some(([v]) => v === keep) ? keep : '';
  }
}
