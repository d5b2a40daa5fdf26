package events

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// Exchanges are the six Taskcluster auth exchanges (after the prefix).
var Exchanges = []string{
	"client-created", "client-updated", "client-deleted",
	"role-created", "role-updated", "role-deleted",
}

// RoutingKey is the routing key of every message: the exchanges' only
// routing-key entry (`reserved`, multi-word) is never set, which
// Taskcluster's publisher sends as "_". Consumers bind "#".
const RoutingKey = "_"

// Message is one AMQP publish: the exchange (with prefix) and the message.
type Message struct {
	Exchange string
	amqp.Publishing
}

// Build returns the message for ev: exchange <prefix><kind>-<action>,
// body {"clientId":…,"version":1} or {"roleId":…,"version":1} (exactly
// these bytes, as Taskcluster publishes them), persistent, JSON in UTF-8,
// message-id = the event's id (its Raft index), so a consumer can
// recognise a message sent twice. No CC header (Taskcluster sets one only
// for task routes).
func Build(prefix string, ev raftstore.OutboxEvent) (Message, error) {
	var key string
	switch ev.Kind {
	case "client":
		key = "clientId"
	case "role":
		key = "roleId"
	default:
		return Message{}, fmt.Errorf("events: unknown event kind %q", ev.Kind)
	}
	switch ev.Action {
	case "created", "updated", "deleted":
	default:
		return Message{}, fmt.Errorf("events: unknown event action %q", ev.Action)
	}
	// As JSON.stringify: role ids often contain <..>, left unescaped.
	id, err := protocol.Marshal(ev.ID)
	if err != nil {
		return Message{}, err
	}
	body := make([]byte, 0, len(id)+24)
	body = append(body, `{"`...)
	body = append(body, key...)
	body = append(body, `":`...)
	body = append(body, id...)
	body = append(body, `,"version":1}`...)
	return Message{
		Exchange: prefix + ev.Kind + "-" + ev.Action,
		Publishing: amqp.Publishing{
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			DeliveryMode:    amqp.Persistent,
			MessageId:       ev.MessageID(),
			Body:            body,
		},
	}, nil
}
